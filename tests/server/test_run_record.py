"""A run's record as stored: JSON-ready whatever the request carried, and the same at every save."""

from __future__ import annotations

import time
from dataclasses import replace

import orjson

from chronos.server._assistants import ServedGraph
from chronos.server._run_record import RunRecord
from chronos.server._run_request import parse_run_request
from tests.server.graphs import agent


class _Note:
    """What a dialect may put in a run's input: not JSON."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"note:{self.text}"


def _record(input: dict[str, object]) -> RunRecord:
    request = parse_run_request({"assistant_id": "agent", "metadata": {"by": "test"}},
                                default_disconnect="continue")
    request = replace(request, input=input)
    served = ServedGraph("agent", agent, "assistant-1", "2026-01-01T00:00:00+00:00")
    return RunRecord("run-1", "thread-1", False, served, request, time.time(), "owner-1")


def test_a_record_is_json_as_it_is_even_with_objects_in_its_input() -> None:
    record = _record({"notes": [_Note("hi")], "topic": "t"})
    stored = record.to_json()
    assert orjson.loads(orjson.dumps(stored)) == stored  # no `default` needed: plain JSON
    assert stored["described"]["kwargs"]["input"] == {"notes": ["note:hi"], "topic": "t"}
    assert stored["described"]["metadata"] == {"by": "test"}


def test_a_record_saved_again_says_its_new_status_and_values_and_the_same_request() -> None:
    record = _record({"topic": "t"})
    first = record.to_json()
    record.status, record.values, record.updated_at = "success", {"steps": ["plan"]}, 1.0
    later = record.to_json()
    assert later["status"] == later["described"]["status"] == "success"
    assert later["result"] == {"steps": ["plan"]}
    assert later["described"]["kwargs"] == first["described"]["kwargs"]
    assert record.info().describe() == later["described"]
