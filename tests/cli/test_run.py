"""`chronos run MODULE:GRAPH`, run as a real subprocess on graphs written to a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

from chronos.model import ChatRequest, Message
from chronos.model.llamacpp import LlamaCppProvider
from tests.cli.command import PROMPT, chronos_in

AGENT = '''
import asyncio
from chronos import graph
from chronos.graph import emit

async def plan(state):
    emit("progress", {"step": 1})
    return {"plan": "answer " + state["query"]}

async def write(state):
    for word in "Robots dream of electric sheep".split():
        emit("token", word + " ")
        await asyncio.sleep(0)
    return {"answer": "done"}

def review(state):
    if state.get("fail"):
        raise RuntimeError("the reviewer is out")
    return {"reviewed": True}

g = graph.StateGraph("agent").add_node("plan", plan).add_node("write", write)
g.add_node("review", review).set_entry_point("plan").add_edge("plan", "write")
g.add_edge("write", "review").set_finish_point("review")
compiled = g.compile()

paused = graph.StateGraph("approval").add_node("plan", plan).add_interrupt_node("write", write)
paused.set_entry_point("plan").add_edge("plan", "write").set_finish_point("write")
'''

LOCAL_MODEL = '''
from chronos import graph, model
from chronos.model.llamacpp import LlamaCppProvider

provider = LlamaCppProvider()

async def chat(state):
    req = model.ChatRequest(messages=[model.Message(role="user", content=state["query"])],
                            max_tokens=8, temperature=0.0, seed=42)
    return {"response": (await graph.stream_chat(provider, req)).content}

g = graph.StateGraph("chat").add_node("chat", chat).set_entry_point("chat")
g.set_finish_point("chat")
'''


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(source)
    return path


def test_a_run_shows_each_node_its_tokens_and_the_outcome(tmp_path: Path) -> None:
    write(tmp_path, "agent.py", AGENT)
    done = chronos_in(tmp_path, "run", "agent:g", "--input", '{"query": "hi"}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "query": "hi", "plan": "answer hi", "answer": "done", "reviewed": True}
    rows = [line.split() for line in done.stderr.splitlines() if "✓" in line]
    assert [row[1] for row in rows] == ["plan", "write", "review"]
    assert rows[1][3:5] == ["5", "tokens"]
    assert rows[0][-2:] == ["set", "plan"]
    assert "Robots dream of electric sheep" in done.stderr
    assert done.stderr.rstrip().endswith("completed · 20 events")


def test_a_compiled_graph_in_a_file_path_runs_too(tmp_path: Path) -> None:
    path = write(tmp_path, "agent.py", AGENT)
    done = chronos_in(tmp_path.parent, "run", f"{path}:compiled", "--input", '{"query": "x"}',
                       "--store", "memory://")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plan"] == "answer x"


def test_a_failing_node_is_marked_and_explained_in_one_line(tmp_path: Path) -> None:
    write(tmp_path, "agent.py", AGENT)
    done = chronos_in(tmp_path, "run", "agent:g", "--input", '{"query": "hi", "fail": true}')
    assert done.returncode == 1
    assert done.stdout == ""
    failed = [line.split() for line in done.stderr.splitlines() if "✗" in line]
    assert [row[1] for row in failed] == ["review"]
    assert "error: node 'review' failed: RuntimeError('the reviewer is out')" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_interrupt_pauses_with_a_checkpoint_to_resume_from(tmp_path: Path) -> None:
    write(tmp_path, "agent.py", AGENT)
    done = chronos_in(tmp_path, "run", "agent:paused", "--input", '{"query": "hi"}',
                       "--session", "s-1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"query": "hi", "plan": "answer hi"}
    assert ("paused before write; continue with: chronos resume s-1 agent:paused "
            "[--update JSON]\n") in done.stderr
    assert "Robots" not in done.stderr, "the interrupt node did not run"
    assert (tmp_path / "chronos.db").exists(), "checkpoints go to the default store"


def test_mistakes_are_clear_errors(tmp_path: Path) -> None:
    write(tmp_path, "agent.py", AGENT)
    cases = {
        ("agent",): "expected MODULE:GRAPH",
        ("agent:nope",): "agent:nope is not found; graphs there: compiled, g, paused",
        ("agent:AGENT_X",): "is not found",
        ("missing_module:g",): "cannot import 'missing_module'",
        ("agent:asyncio",): "agent:asyncio is a module, not a graph",
        ("agent:g", "--input", "[1]"): "--input must be a JSON object, not list",
        ("agent:g", "--input", "{"): "--input is not valid JSON",
    }
    for args, message in cases.items():
        done = chronos_in(tmp_path, "run", *args)
        assert (done.returncode, done.stdout) == (2, ""), args
        assert message in done.stderr, (args, done.stderr)


def test_a_node_streaming_the_local_model_shows_its_tokens(tmp_path: Path) -> None:
    write(tmp_path, "chat_graph.py", LOCAL_MODEL)
    done = chronos_in(tmp_path, "run", "chat_graph:g", "--input", json.dumps({"query": PROMPT}))
    assert done.returncode == 0, done.stderr
    req = ChatRequest(messages=[Message(role="user", content=PROMPT)],
                      max_tokens=8, temperature=0.0, seed=42)
    chunks = [c.content for c in LlamaCppProvider().stream_chat_sync(req) if c.content]
    assert json.loads(done.stdout)["response"] == "".join(chunks)
    row = next(line.split() for line in done.stderr.splitlines() if "✓" in line)
    assert row[1] == "chat"
    assert row[3:5] == [str(len(chunks)), "tokens"]
    assert "".join(chunks).strip().splitlines()[-1] in done.stderr
