"""The OpenAI-compatible routes read by the official `openai` npm package (tests/server/
dialects/js, installed by scripts/setup) against `chronos serve`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.model.replay import ReplayServer
from tests.server.api_server import Served, serving
from tests.server.dialects.test_openai import REASONING, TOOL_CALL, recording, scripted

_JS = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving("tests.server.dialects.openai_graphs:replay",
                 "tests.server.dialects.openai_graphs:asking") as s:
        yield s


def test_the_npm_client_reads_streams_helpers_and_whole_answers(
        served: Served, replay_server: ReplayServer) -> None:
    prompts = [scripted(replay_server, name) for name in
               (REASONING, TOOL_CALL, REASONING, REASONING, TOOL_CALL, REASONING)]
    done = subprocess.run(["node", str(_JS / "read_openai.mjs"), f"{served.url}/v1", "replay",
                           *prompts], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    thinking = recording(REASONING)["expected"]
    calling = recording(TOOL_CALL)["expected"]
    assert out["chatStream"] == {"content": thinking["text"], "reasoning": thinking["reasoning"],
                                 "finishReason": "stop"}
    assert out["chatHelper"]["toolCalls"] == calling["tool_calls"]
    assert out["chatHelper"]["finishReason"] == "tool_calls"
    assert out["chatWhole"] == {"content": thinking["text"], "reasoning": thinking["reasoning"]}
    assert out["responsesStream"] == {"text": thinking["text"], "reasoning": thinking["reasoning"],
                                      "first": "response.created", "last": "response.completed"}
    assert out["responsesHelper"]["calls"] == calling["tool_calls"]
    assert out["responsesWhole"] == {"text": thinking["text"], "status": "completed"}
    assert out["unknownModel"] == {"status": 404, "code": "model_not_found", "param": "model"}


def test_the_npm_client_answers_a_pause_with_a_tool_result(served: Served) -> None:
    done = subprocess.run(["node", str(_JS / "answer_interrupt.mjs"), f"{served.url}/v1",
                           "asking", "yes"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["paused"] == {"content": "Draft ready.", "finishReason": "tool_calls",
                             "name": "interrupt", "arguments": {"question": "publish?"}}
    assert out["done"] == {"content": "published: yes", "finishReason": "stop"}
