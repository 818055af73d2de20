"""`quick_init`: a frozen dataclass made in one step behaves as the generated `__init__` would."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chronos._records import quick_init


@quick_init
@dataclasses.dataclass(frozen=True)
class Record:
    name: str
    count: int = 3
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def test_parameters_defaults_and_factories_are_those_of_the_generated_init() -> None:
    assert Record("a") == Record(name="a", count=3, extra={})
    assert Record("a", 5, {"k": 1}).extra == {"k": 1}
    assert Record("a").extra is not Record("a").extra  # a fresh default per instance
    with pytest.raises(TypeError):
        Record()  # type: ignore[call-arg]


def test_it_stays_frozen_and_works_with_replace() -> None:
    record = Record("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "b"  # type: ignore[misc]
    assert dataclasses.replace(record, count=7) == Record("a", 7)
    assert repr(record) == "Record(name='a', count=3, extra={})"


def test_a_class_with_slots_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        name: str

    with pytest.raises(AssertionError, match="slots"):
        quick_init(Slotted)
