"""Frozen dataclasses that are cheap to make: their fields set in one step, not one by one.

A frozen dataclass's generated `__init__` sets each field with its own `object.__setattr__`
call, the one way past the class's refusing `__setattr__` (and, with slots, the only way at
all). Without slots the instance's `__dict__` can be given whole instead, in one call. A run
makes a `Checkpoint` per step and per load, and a `RunState` per run: at 17-19 fields the
generated `__init__` took about half of a small run's own time (BENCHMARKS.md, issue 13).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, cast

__all__ = ["quick_init"]

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Give `cls`, a frozen dataclass without slots, an `__init__` that sets its `__dict__` at
    once: the same parameters, defaults and default factories as the generated one."""
    params: dict[str, dataclasses.Field[Any]] = {
        f.name: f for f in dataclasses.fields(cast(Any, cls))}
    assert "__slots__" not in cls.__dict__, f"{cls.__name__} has slots: no __dict__ to set"
    assert not hasattr(cls, "__post_init__"), f"{cls.__name__}.__post_init__ would not run"
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    signature: list[str] = []
    factories: list[str] = []
    for name, spec in params.items():
        assert spec.init, f"{cls.__name__}.{name}: init=False is not supported"
        if spec.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = spec.default
            signature.append(f"{name}=_default_{name}")
        elif spec.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = spec.default_factory
            signature.append(f"{name}=_MISSING")
            factories.append(f"    if {name} is _MISSING: {name} = _factory_{name}()\n")
        else:
            signature.append(name)
    fields = ", ".join(f"{name!r}: {name}" for name in params)
    source = (f"def __init__(self, {', '.join(signature)}):\n{''.join(factories)}"
              f"    object.__setattr__(self, '__dict__', {{{fields}}})\n")
    exec(source, namespace)  # code made above from the field names alone
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
