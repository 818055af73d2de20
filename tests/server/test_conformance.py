"""The official Python SDK sees the same thing from `chronos serve` as from `langgraph dev`.

Each scenario of `tests/server/scenarios.py` runs against the reference server (PyPI
`langgraph-cli[inmem]`, on `reference_graphs.agent`) and against `chronos serve` (on its
Chronos twin, `graphs.agent`); the traces must be equal. The reference's own traces are also
checked against what the scenarios promise, so a scenario cannot pass by both servers doing
nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.model.replay import ReplayServer, Reply
from tests.server.conformance_differences import EXPECTED_DIFFERENCES
from tests.server.conformance_servers import ServedAPI, chronos_server, reference_server
from tests.server.draft import TOKEN_COUNT, draft_tokens
from tests.server.scenarios import SCENARIOS, Trace, tokens_from_a_model_over_http


@pytest.fixture(scope="module")
def reference() -> Iterator[ServedAPI]:
    with reference_server() as api:
        yield api


@pytest.fixture(scope="module")
def chronos() -> Iterator[ServedAPI]:
    with chronos_server() as api:
        yield api


@pytest.fixture(scope="module")
def reference_traces() -> dict[str, Trace]:
    return {}


def _reference_trace(name: str, reference: ServedAPI, cache: dict[str, Trace]) -> Trace:
    if name not in cache:
        for _ in range(5):
            cache[name] = asyncio.run(SCENARIOS[name](reference.url))
            if not _reference_lost_events(name, cache[name]):
                break
    return cache[name]


_RECONNECTED = ["metadata", "values", "custom", "reconnected", "values", "custom", "values",
                "custom", "values"]


def _reference_lost_events(name: str, trace: Trace) -> bool:
    """Whether the reference lost or reordered an event across the reconnect, which it does
    under load (the `values` after `plan`, published as the first stream was closing; its join
    from that `Last-Event-ID` then starts at `write`'s custom event): in 0 of 40 runs idle, 6
    of 60 beside two CPU hogs, 12 of 60 beside four, always that one loss (chronos: 0 of 60).
    The scenario promises each step's `values` before the next node's events, nothing lost:
    such a run is not the behaviour to match, and is run again; five all losing is ~3e-4 even
    at one in five."""
    if name != "reconnect_with_last_event_id":
        return False
    steps = [len(data["steps"]) for event, data in trace if event == "values"]
    return steps != [0, 1, 2, 3] or _events(trace) != _RECONNECTED


def _events(trace: Trace) -> list[str]:
    return [event for event, _ in trace]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_chronos_serve_matches_the_reference(
    name: str, reference: ServedAPI, chronos: ServedAPI, reference_traces: dict[str, Trace]
) -> None:
    expected = _reference_trace(name, reference, reference_traces)
    actual = asyncio.run(SCENARIOS[name](chronos.url))
    if name in EXPECTED_DIFFERENCES:
        assert actual != expected, f"{name} now matches: remove it from EXPECTED_DIFFERENCES"
        pytest.xfail(EXPECTED_DIFFERENCES[name])
    assert actual == expected, f"chronos {_events(actual)}, reference {_events(expected)}"


def test_reference_streams_every_mode(
    reference: ServedAPI, reference_traces: dict[str, Trace]
) -> None:
    custom = _reference_trace("stream_custom", reference, reference_traces)
    assert [data for event, data in custom if event == "custom"] == [
        {"node": "plan", "topic": "t"}, {"node": "write"}, {"node": "review"},
    ]
    tokens = _reference_trace("stream_messages_tuple", reference, reference_traces)
    assert _events(tokens).count("messages") == TOKEN_COUNT
    several = _events(_reference_trace("stream_several_modes", reference, reference_traces))
    assert {"metadata", "values", "updates", "custom", "messages"} == set(several)


def test_reference_runs_lifecycle(
    reference: ServedAPI, reference_traces: dict[str, Trace]
) -> None:
    def trace(name: str) -> Trace:
        return _reference_trace(name, reference, reference_traces)

    assert trace("cancel_running_run") == [("interrupt", "interrupted"), ("rollback", "gone (404)")]
    assert trace("multitask_reject")[0] == ("error", {"status": 409, "keys": ["detail"]})
    assert trace("multitask_rollback")[0] == ("first", "gone (404)")
    assert trace("disconnect_cancels_run") == [("status", "interrupted")]
    joined = trace("background_run_joined_by_second_client")
    assert joined[-1] == ("final", "success")
    assert _events(joined).count("custom") == 3
    resumed = trace("reconnect_with_last_event_id")
    assert _events(resumed).count("custom") == 3  # nothing lost, nothing repeated


def test_chronos_refuses_what_the_reference_lets_through(
    reference: ServedAPI, chronos: ServedAPI, reference_traces: dict[str, Trace]
) -> None:
    """The deliberate differences of `limits`: 413 and 400, and the thread runs on as on the
    reference."""
    expected = _reference_trace("limits", reference, reference_traces)
    assert expected[:2] == [("11 MB body", 200), ("malformed Last-Event-ID", 200)]
    actual = asyncio.run(SCENARIOS["limits"](chronos.url))
    assert actual == [("11 MB body", 413), ("malformed Last-Event-ID", 400), expected[2]]


def _openai_stream_body(tokens: list[str]) -> bytes:
    def line(delta: dict[str, str], finish: str | None = None) -> bytes:
        chunk = {"id": "chatcmpl-c", "object": "chat.completion.chunk", "model": "gpt-x",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    body = line({"role": "assistant", "content": ""})
    body += b"".join(line({"content": token}) for token in tokens)
    return body + line({}, "stop") + b"data: [DONE]\n\n"


def test_tokens_from_a_model_over_http_match(
    reference: ServedAPI, chronos: ServedAPI, replay_server: ReplayServer
) -> None:
    """Both servers stream a model's tokens from the replay server (the same OpenAI stream,
    cut at random byte positions) into `messages-tuple`, in order, then the node's update."""
    tokens = draft_tokens("h")
    traces = []
    for api in (reference, chronos):
        script = replay_server.script(Reply(body=_openai_stream_body(tokens), seed=len(traces)))
        traces.append(asyncio.run(tokens_from_a_model_over_http(script.base_url)(api.url)))
        assert [json.loads(e.body)["stream"] for e in script.exchanges] == [True]
    expected, actual = traces
    assert [data[0]["content"] for event, data in expected if event == "messages"] == tokens
    assert actual == expected
