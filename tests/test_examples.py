"""Every program in `examples/` runs as a user would run it, and prints what the guide shows."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.model.replay import ReplayServer, Reply

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(path.name for path in (ROOT / "examples").glob("*.py"))

# A model that says a word, then calls a tool twice, its arguments in fragments.
TOOL_STREAM = b"".join(
    b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": end}]})
    + b"\n\n"
    for delta, end in [
        ({"role": "assistant", "content": "Let me check."}, None),
        ({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                          "function": {"name": "get_weather", "arguments": '{"ci'}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]}, None),
        ({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                          "function": {"name": "get_weather", "arguments": ""}}]}, None),
        ({"tool_calls": [{"index": 1, "function": {"arguments": '{"city": "Lima"}'}}]},
         "tool_calls"),
    ]
) + b"data: [DONE]\n\n"


def run(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_model_streaming(tmp_path: Path, replay: ReplayServer) -> None:
    out = run("model_streaming.py")
    assert out.endswith("\n")
    assert len(out.split()) >= 20, out  # a story, not an empty line


def check_model_tool_calls(tmp_path: Path, replay: ReplayServer) -> None:
    script = replay.script(Reply(body=TOOL_STREAM))
    out = run("model_tool_calls.py", "--base-url", script.base_url + "/v1",
              env={"OPENAI_API_KEY": "test-key"})
    assert out.splitlines() == [
        "Let me check.",
        "tool call call_1: get_weather({'city': 'Oslo'}) -> "
        "{'city': 'Oslo', 'sky': 'clear', 'celsius': 21}",
        "tool call call_2: get_weather({'city': 'Lima'}) -> "
        "{'city': 'Lima', 'sky': 'clear', 'celsius': 21}",
    ]
    assert orjson.loads(script.exchanges[0].body)["tools"][0]["function"]["name"] == "get_weather"


def check_model_in_graph(tmp_path: Path, replay: ReplayServer) -> None:
    out = run("model_in_graph.py", "--max-tokens", "12", "Tell me a story about a robot")
    head, _, rest = out.partition("[node_start] node=chat\n")
    streamed, _, tail = rest.partition("\n[node_end] node=chat\n")
    assert head == ""
    assert tail.splitlines()[:2] == ["[edge_transition] node=chat", "[completed] node=chat"]
    response = ast.literal_eval(tail.splitlines()[2].removeprefix("response="))
    assert streamed == response
    assert len(streamed.split()) >= 3


def check_broker_publish_subscribe(tmp_path: Path, replay: ReplayServer) -> None:
    lines = run("broker_publish_subscribe.py", "--events", "4").splitlines()
    assert [line.split(" ", 1)[1] for line in lines[:4]] == [
        "[node_end] {'node': 'extract', 'status': 'done'}",
        "[progress] {'node': 'answer', 'n': 1}",
        "[progress] {'node': 'answer', 'n': 2}",
        "[progress] {'node': 'answer', 'n': 3}",
    ]
    ids = [line.split(" ", 1)[0] for line in lines[:4]]
    assert len(set(ids)) == 4
    assert lines[4] == "received=4 closed=True"


def check_sse_broker(tmp_path: Path, replay: ReplayServer) -> None:
    out = run("sse_broker.py", "--port", str(free_port()), "--events", "3", "--interval", "0")
    lines = out.splitlines()
    assert lines[0].startswith("serving on http://127.0.0.1:")
    assert [line.split(" ", 1)[0] for line in lines[1:]] == [
        "[node_start]", "[node_end]", "[node_start]"]


def check_graph_streaming(tmp_path: Path, replay: ReplayServer) -> None:
    lines = run("graph_streaming.py", "--db", str(tmp_path / "runs.db")).splitlines()
    events = [line for line in lines if line.startswith("[")]
    assert events[:4] == ["[checkpoint] node=", "[node_start] node=extract",
                          "[custom] node=extract", "[node_end] node=extract"]
    assert events.count("[token] node=chat") == 7
    for node in ("extract", "chat", "summarise"):
        assert f"[node_start] node={node}" in events
        assert f"[edge_transition] node={node}" in events
    assert events[-1] == "[completed] node=summarise"
    assert "status=completed" in lines[-2]
    assert "'summary': 'A robot once asked about...'" in lines[-2]
    assert lines[-1] == "checkpoints=4"


def check_graph_interrupt_resume(tmp_path: Path, replay: ReplayServer) -> None:
    db = str(tmp_path / "runs.db")
    paused = run("graph_interrupt_resume.py", "--db", db)
    assert paused.startswith("status=paused node=publish")
    resumed = run("graph_interrupt_resume.py", "--db", db, "--approve")  # a second process
    assert resumed.startswith("status=completed node=publish")
    assert "'log': ['draft', 'publish']" in resumed
    assert "'published': True" in resumed


def check_graph_ask_and_fan_out(tmp_path: Path, replay: ReplayServer) -> None:
    db = str(tmp_path / "runs.db")
    asked = run("graph_ask_and_fan_out.py", "--db", db)
    assert asked.startswith("status=paused asks={'question': 'One more topic?', "
                            "'topics': ['rain']}")
    done = run("graph_ask_and_fan_out.py", "--db", db, "--answer", "tea")  # a second process
    assert done.startswith("status=completed posts=['Robots and rain', 'Robots and tea']")
    assert "\tcollect --> __end__;" in done


CHECKS: dict[str, Callable[[Path, ReplayServer], None]] = {
    "model_streaming.py": check_model_streaming,
    "model_tool_calls.py": check_model_tool_calls,
    "model_in_graph.py": check_model_in_graph,
    "broker_publish_subscribe.py": check_broker_publish_subscribe,
    "sse_broker.py": check_sse_broker,
    "graph_streaming.py": check_graph_streaming,
    "graph_interrupt_resume.py": check_graph_interrupt_resume,
    "graph_ask_and_fan_out.py": check_graph_ask_and_fan_out,
}


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_and_prints_what_the_guide_shows(
    name: str, tmp_path: Path, replay_server: ReplayServer
) -> None:
    check = CHECKS.get(name)
    assert check is not None, f"examples/{name} has no check in tests/test_examples.py"
    check(tmp_path, replay_server)
