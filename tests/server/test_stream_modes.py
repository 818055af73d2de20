"""The messages-tuple frames `RunTranslator` builds from encoded parts: the same bytes as the
`[message chunk, metadata]` pair encoded whole."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chronos.server._message_chunk import message_chunk
from chronos.server._stream_modes import RUN_START, RunTranslator

_DELTAS: list[dict[str, Any]] = [
    {"message_id": "m1", "content": "Hello"},
    {"message_id": "m1", "content": ' "quoted" \\ back\nslash'},
    {"message_id": "m1", "content": "é ☃ 😀 \u2028"},
    {"message_id": "m1", "content": ""},
    {"message_id": "m1", "content": "", "reasoning": "thinking"},
    {"message_id": "m1", "content": "x", "tool_call_deltas": [
        {"index": 0, "id": "c1", "name": "search", "arguments": '{"q":'}]},
    {"message_id": "m1", "content": "", "tool_calls": [
        {"id": "c1", "name": "search", "arguments": '{"q": "x"}'}]},
    {"message_id": "m1", "content": "", "usage": {"input_tokens": 3, "output_tokens": 5,
                                                  "cached_tokens": 1}},
    {"message_id": "m2", "content": "next message"},
    {"message_id": "m2", "content": None, "reasoning": "", "tool_calls": [], "usage": None},
]


def _token(node: str, delta: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": "run", "node_id": node, "path": [], "data": delta}


def _metadata(node: str, step: int) -> dict[str, Any]:
    return {"langgraph_node": node, "langgraph_step": step,
            "langgraph_path": ["__pregel_pull", node], "run_id": "run"}


@pytest.mark.parametrize("node", ["write", 'a "node" ☃'])
def test_messages_tuple_frames_are_the_pair_encoded_whole(node: str) -> None:
    translator = RunTranslator("run", ("messages-tuple",), subgraphs=False, started=False)
    assert translator.frames(RUN_START, {"run_id": "run", "values": {}}) == []
    for step in (0, 1):
        for delta in _DELTAS:
            [(name, data)] = translator.frames("token", _token(node, delta))
            expected = [message_chunk(delta["message_id"], str(delta.get("content") or ""),
                                      delta=delta), _metadata(node, step)]
            assert name == "messages"
            assert orjson.dumps(data) == orjson.dumps(expected)
        translator.frames("checkpoint", {"run_id": "run", "node_id": node, "path": [],
                                         "data": f"checkpoint-{step}"})
