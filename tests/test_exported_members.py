"""Every public name a package exports is listed in its `__all__`, and every listed name exists."""

import importlib
from types import ModuleType

import pytest

PACKAGES = ["chronos", "chronos.model", "chronos.graph", "chronos.stream", "chronos.store"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    package = importlib.import_module(name)
    public = {
        attr
        for attr, value in vars(package).items()
        if not attr.startswith("_")
        and not (isinstance(value, ModuleType) and not value.__name__.startswith(name + "."))
        and getattr(value, "__module__", name).startswith("chronos")
    }
    # `chronos.cli` is the command's entry point, not an API; it appears once something runs it.
    public -= {"annotations", "cli"}
    listed = set(package.__all__)
    assert listed - set(vars(package)) == set(), "listed but missing"
    submodules = {
        attr for attr in public if isinstance(vars(package)[attr], ModuleType)
        and vars(package)[attr].__name__.rsplit(".", 1)[-1].startswith("_")
    }
    assert public - submodules - listed == set(), "exported but not in __all__"
