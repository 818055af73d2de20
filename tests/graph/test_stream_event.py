"""`StreamEvent` keeps what users did with it as a named tuple, but the tuple itself."""

from __future__ import annotations

import pickle
from types import MappingProxyType

import pytest

from chronos import graph
from tests.compiled import compiled


def _event(**changes: object) -> graph.StreamEvent:
    event = graph.StreamEvent("custom", "emit", 3, 1.5, "run-1", "s", data={"i": 3},
                              name="progress", path=("outer",))
    return event._replace(**changes)


def test_it_has_its_fields_and_their_defaults() -> None:
    event = graph.StreamEvent("node_start", "a", 1, 2.0, "run-1", "s")
    assert (event.type, event.node_id, event.seq, event.timestamp, event.run_id,
            event.session_id) == ("node_start", "a", 1, 2.0, "run-1", "s")
    assert (event.state, event.error, event.data, event.name, event.path) == (
        None, "", None, "", ())


def test_events_with_the_same_fields_are_equal_and_hash_alike() -> None:
    assert _event() == _event()
    assert hash(_event(data="x")) == hash(_event(data="x"))
    assert _event() != _event(seq=4)
    assert _event() != ("custom", "emit", 3)
    assert len({_event(data="x"), _event(data="x"), _event(data="y")}) == 2


def test_replace_asdict_and_fields_work_as_on_the_named_tuple() -> None:
    event = _event()
    assert event._replace(seq=9).seq == 9
    assert event.seq == 3  # the original is unchanged
    assert event._asdict() == {
        "type": "custom", "node_id": "emit", "seq": 3, "timestamp": 1.5, "run_id": "run-1",
        "session_id": "s", "state": None, "error": "", "data": {"i": 3}, "name": "progress",
        "path": ("outer",)}
    assert graph.StreamEvent._fields == tuple(event._asdict())
    with pytest.raises(TypeError):
        event._replace(colour="red")


def test_repr_names_every_field() -> None:
    assert repr(_event(data=None)) == (
        "StreamEvent(type='custom', node_id='emit', seq=3, timestamp=1.5, run_id='run-1', "
        "session_id='s', state=None, error='', data=None, name='progress', path=('outer',))")


def test_it_pickles() -> None:
    event = _event()
    assert pickle.loads(pickle.dumps(event)) == event


def test_a_compiled_event_cannot_be_changed() -> None:
    event = _event(state=MappingProxyType({"x": 1}))
    if not compiled(graph.StreamEvent._asdict):
        pytest.skip("only the compiled class refuses it at run time; mypy does everywhere")
    with pytest.raises(AttributeError):
        event.seq = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.state["x"] = 2  # type: ignore[index]
