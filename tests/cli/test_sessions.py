"""`chronos sessions`, `checkpoints` and `resume`: real subprocesses on a real SQLite file.

Each test runs `chronos run` first, as a user would, then reads or continues what it left in
the store from another process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import datetime
from pathlib import Path

from chronos import model
from chronos.store import Checkpoint, SQLiteStore
from tests.cli.command import CHRONOS, chronos_in, environment
from tests.graph.test_usage import openai_stream
from tests.model.replay import ReplayServer, Reply

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

AGENT = '''
import os
from chronos import graph
from chronos.graph import emit

async def plan(state):
    return {"plan": "answer " + state["query"]}

async def review(state):
    emit("token", "looks good")
    return {"verdict": "approved" if state.get("approved") else "rejected"}

def finalize(state):
    if state.get("fail"):
        raise RuntimeError("the printer is out of paper")
    if os.environ.get("CRASH_ONCE") and not os.path.exists("crashed"):
        open("crashed", "w").close()
        os._exit(9)  # as if killed: no exception, no final checkpoint
    return {"final": state["plan"] + " / " + state["verdict"]}

approval = graph.StateGraph("approval").add_node("plan", plan)
approval.add_interrupt_node("review", review).add_node("finalize", finalize)
approval.set_entry_point("plan").add_edge("plan", "review").add_edge("review", "finalize")
approval.set_finish_point("finalize")

straight = graph.StateGraph("straight").add_node("plan", plan).add_node("finalize", finalize)
straight.set_entry_point("plan").add_edge("plan", "finalize").set_finish_point("finalize")
'''


def rows(output: str) -> list[list[str]]:
    """A table's rows, split on whitespace, without its header."""
    lines = output.splitlines()
    assert lines, "no table"
    assert lines[0].split()[0] in ("SESSION", "STEP"), output
    return [line.split() for line in lines[1:]]


def history(db: Path, session_id: str) -> list[Checkpoint]:
    async def read() -> list[Checkpoint]:
        async with SQLiteStore(db) as checkpoints:
            return await checkpoints.history(session_id)

    return asyncio.run(read())


def local_time(timestamp: float) -> list[str]:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S").split()


def test_a_paused_run_is_listed_inspected_and_resumed_to_completion(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    db = tmp_path / "runs.db"
    store = f"--store=sqlite:///{db}"

    ran = chronos_in(tmp_path, "run", "agent:approval", "--session", "s-1", store,
                  "--input", '{"query": "hi"}')
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"query": "hi", "plan": "answer hi"}
    assert ("paused before review; continue with: chronos resume s-1 agent:approval "
            "[--update JSON] --store URL") in ran.stderr

    listed = chronos_in(tmp_path, "sessions", store)
    assert listed.returncode == 0, listed.stderr
    paused = history(db, "s-1")
    assert rows(listed.stdout) == [
        ["s-1", "approval", "paused", "plan", "review", str(len(paused)),
         *local_time(paused[-1].created_at)],
    ]

    shown = chronos_in(tmp_path, "checkpoints", "s-1", store)
    assert shown.returncode == 0, shown.stderr
    assert rows(shown.stdout) == [
        [str(c.step), c.id, *c.ran, *c.next, c.status, *local_time(c.created_at)]
        for c in paused
    ]
    assert rows(shown.stdout)[-1][2:5] == ["plan", "review", "paused"]

    resumed = chronos_in(tmp_path, "resume", "s-1", "agent:approval", store,
                      "--update", '{"approved": true}')
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {
        "query": "hi", "plan": "answer hi", "approved": True, "verdict": "approved",
        "final": "answer hi / approved"}
    done = {row[1]: row[2:] for row in (line.split() for line in resumed.stderr.splitlines())
            if row and row[0] == "✓"}
    assert done["plan"] == ["earlier", "run"], "plan ran before the pause, not again"
    assert done["review"][1:] == ["1", "tokens", "set", "verdict"]
    assert "looks good" in resumed.stderr
    assert "completed ·" in resumed.stderr.splitlines()[-1]

    after = rows(chronos_in(tmp_path, "sessions", store).stdout)
    completed = history(db, "s-1")
    assert after == [["s-1", "approval", "completed", "finalize", str(len(completed)),
                      *local_time(completed[-1].created_at)]]
    assert len(completed) > len(paused)


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(CHRONOS), *args], cwd=folder, env=environment(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_resumes_of_one_paused_session_never_both_run(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    db = tmp_path / "runs.db"
    store = f"--store=sqlite:///{db}"
    for round in range(3):
        session = f"twice-{round}"
        ran = chronos_in(tmp_path, "run", "agent:approval", "--session", session, store,
                      "--input", '{"query": "hi"}')
        assert ran.returncode == 0, ran.stderr
        answers = [start(tmp_path, "resume", session, "agent:approval", store,
                         "--update", f'{{"approved": {approved}}}')
                   for approved in ("true", "false")]
        outcomes = [(p.wait(120), *p.communicate()) for p in answers]
        winners = [o for o in outcomes if o[0] == 0]
        losers = [o for o in outcomes if o[0] != 0]
        assert len(winners) == 1, outcomes
        # Refused while the other ran, or, if it came after, refused as a completed session.
        [(code, out, err)] = losers
        assert (code, out) == (1, ""), err
        last = err.strip().splitlines()[-1]
        assert last in (f"error: session {session!r} is already running elsewhere",
                        f"error: session {session!r} has completed: its final state cannot be "
                        f"updated; fork it into a new session instead "
                        f"(Runner.fork_from({history(db, session)[-1].id!r}, update))"), err
        final = json.loads(winners[0][1])
        checkpoints = history(db, session)
        assert [c.parent_id for c in checkpoints[1:]] == [c.id for c in checkpoints[:-1]]
        assert [c.status for c in checkpoints].count("completed") == 1
        assert checkpoints[-1].state == final


def test_updating_a_completed_session_is_an_error_that_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    db = tmp_path / "runs.db"
    store = f"--store=sqlite:///{db}"
    chronos_in(tmp_path, "run", "agent:straight", "--session", "done", store,
            "--input", '{"query": "q", "verdict": "-"}')
    before = history(db, "done")
    assert before[-1].status == "completed"
    refused = chronos_in(tmp_path, "resume", "done", "agent:straight", store,
                      "--update", '{"verdict": "late"}')
    assert (refused.returncode, refused.stdout) == (1, ""), refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"error: session 'done' has completed: its final state cannot be updated; fork it into "
        f"a new session instead (Runner.fork_from({before[-1].id!r}, update))"]
    again = chronos_in(tmp_path, "resume", "done", "agent:straight", store)
    assert again.returncode == 0, again.stderr
    assert "nothing to run" in again.stderr
    assert json.loads(again.stdout) == dict(before[-1].state)
    assert history(db, "done") == before


def test_a_killed_run_shows_as_running_and_resumes_at_the_node_in_flight(
    tmp_path: Path,
) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    store = f"--store=sqlite:///{tmp_path / 'runs.db'}"
    killed = chronos_in(tmp_path, "run", "agent:straight", "--session", "crash", store,
                     "--input", '{"query": "q", "verdict": "-"}', CRASH_ONCE="1")
    assert killed.returncode == 9
    [row] = rows(chronos_in(tmp_path, "sessions", store).stdout)
    assert row[:5] == ["crash", "straight", "running", "plan", "finalize"]

    resumed = chronos_in(tmp_path, "resume", "crash", "agent:straight", store, CRASH_ONCE="1")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["final"] == "answer q / -"
    assert [row[:2] for row in rows(chronos_in(tmp_path, "sessions", store).stdout)] == [
        ["crash", "straight"]]
    assert "completed" in chronos_in(tmp_path, "sessions", store).stdout


def test_a_failed_run_resumes_with_an_update_that_fixes_its_state(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    store = f"--store=sqlite:///{tmp_path / 'runs.db'}"
    failed = chronos_in(tmp_path, "run", "agent:straight", "--session", "f", store,
                     "--input", '{"query": "q", "verdict": "-", "fail": true}')
    assert failed.returncode == 1
    assert "the printer is out of paper" in failed.stderr
    [row] = rows(chronos_in(tmp_path, "sessions", store).stdout)
    assert row[:3] == ["f", "straight", "failed"]
    shown = chronos_in(tmp_path, "checkpoints", "f", store).stdout.splitlines()
    assert shown[0].split()[-1] == "ERROR"
    assert "failed" in shown[-1]
    assert "the printer is out of paper" in shown[-1]

    resumed = chronos_in(tmp_path, "resume", "f", "agent:straight", store,
                      "--update", '{"fail": false}')
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["final"] == "answer q / -"


def test_the_readme_walkthrough_uses_chronos_db_in_the_current_folder(tmp_path: Path) -> None:
    example = f"{EXAMPLES / 'graph_interrupt_resume.py'}:g"
    ran = chronos_in(tmp_path, "run", example, "--session", "post-1",
                  "--input", '{"topic": "tea", "log": []}')
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "chronos.db").exists()
    [row] = rows(chronos_in(tmp_path, "sessions").stdout)
    assert row[:6] == ["post-1", "post", "paused", "draft", "publish", "2"]
    assert len(rows(chronos_in(tmp_path, "checkpoints", "post-1").stdout)) == 2

    resumed = chronos_in(tmp_path, "resume", "post-1", example, "--update", '{"approved": true}')
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {
        "topic": "tea", "log": ["draft", "publish"], "post": "Robots and tea",
        "approved": True, "published": True}


def test_the_store_url_comes_from_the_environment_and_store_overrides_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    env_db, flag_db = tmp_path / "env.db", tmp_path / "flag.db"
    for session, flags in (("one", []), ("two", ["--store", f"sqlite:///{flag_db}"])):
        done = chronos_in(tmp_path, "run", "agent:approval", "--session", session, *flags,
                       "--input", '{"query": "x"}', CHRONOS_STORE_URL=f"sqlite:///{env_db}")
        assert done.returncode == 0, done.stderr
    from_env = chronos_in(tmp_path, "sessions", CHRONOS_STORE_URL=f"sqlite:///{env_db}")
    assert [row[0] for row in rows(from_env.stdout)] == ["one"]
    overridden = chronos_in(tmp_path, "sessions", "--store", f"sqlite:///{flag_db}",
                         CHRONOS_STORE_URL=f"sqlite:///{env_db}")
    assert [row[0] for row in rows(overridden.stdout)] == ["two"]
    assert not (tmp_path / "chronos.db").exists()


def test_a_run_in_memory_says_there_is_nothing_to_resume(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    done = chronos_in(tmp_path, "run", "agent:approval", "--store", "memory://",
                   "--input", '{"query": "x"}')
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith(
        "paused before review; the memory:// store keeps nothing to resume from\n")
    assert list(tmp_path.iterdir()) == [tmp_path / "agent.py"]


def test_sessions_are_newest_first_and_never_folded(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    store = f"--store=sqlite:///{tmp_path / 'runs.db'}"
    long_id = "a-session-id-long-enough-to-overflow-an-80-column-terminal-" + "x" * 40
    for session in ("first", long_id, "last"):
        done = chronos_in(tmp_path, "run", "agent:approval", "--session", session, store,
                       "--input", '{"query": "x"}')
        assert done.returncode == 0, done.stderr
    listed = chronos_in(tmp_path, "sessions", store)
    assert [row[0] for row in rows(listed.stdout)] == ["last", long_id, "first"]
    assert len(listed.stdout.splitlines()) == 4
    limited = chronos_in(tmp_path, "sessions", store, "--limit", "1")
    assert [row[0] for row in rows(limited.stdout)] == ["last"]


def test_reading_an_empty_store_creates_nothing(tmp_path: Path) -> None:
    listed = chronos_in(tmp_path, "sessions")
    assert (listed.returncode, listed.stdout) == (0, "")
    assert "no sessions in the store" in listed.stderr
    for args in (["checkpoints", "nobody"], ["resume", "nobody", "agent:approval"]):
        (tmp_path / "agent.py").write_text(AGENT)
        done = chronos_in(tmp_path, *args)
        assert (done.returncode, done.stdout) == (1, ""), args
        assert "error: no session 'nobody' in the store" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "chronos.db").exists()


def test_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    store = f"--store=sqlite:///{tmp_path / 'runs.db'}"
    paused = chronos_in(tmp_path, "run", "agent:approval", "--session", "p", store,
                     "--input", '{"query": "x"}')
    assert paused.returncode == 0, paused.stderr
    cases = {
        ("resume", "p", "agent:approval", store, "--update", "{"): (
            2, "--update is not valid JSON"),
        ("resume", "p", "agent:approval", store, "--update", '"yes"'): (
            2, "--update must be a JSON object, not str"),
        ("resume", "p", "missing_module:g", store): (2, "cannot import 'missing_module'"),
        ("resume", "p", "agent:nope", store): (2, "agent:nope is not found"),
        ("resume", "p", "agent:straight", store): (
            2, "session 'p' is a run of graph 'approval', not 'straight' (agent:straight)"),
        ("resume", "unknown", "agent:approval", store): (
            1, "no session 'unknown' in the store"),
        ("sessions", "--store", "redis://localhost"): (2, "unknown store URL scheme 'redis'"),
        ("checkpoints", "p", "--store", "runs.db"): (2, "not a store URL: 'runs.db'"),
        ("run", "agent:approval", "--store", "nope://x"): (2, "unknown store URL scheme"),
    }
    for args, (status, message) in cases.items():
        done = chronos_in(tmp_path, *args)
        assert (done.returncode, done.stdout) == (status, ""), (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
    # None of these touched the paused run.
    [row] = rows(chronos_in(tmp_path, "sessions", store).stdout)
    assert row[:3] == ["p", "approval", "paused"]


SPENDER = '''
import os
from chronos import graph, model
from chronos.model.openai import OpenAIProvider

REQUEST = model.ChatRequest(messages=[model.Message(role="user", content="Hi")])

def caller(name):
    async def node(state):
        async with OpenAIProvider(name, base_url=os.environ["MODEL_URL"], api_key="k") as p:
            await graph.stream_chat(p, REQUEST)
        return {}
    return node

spender = graph.StateGraph("spender").add_node("known", caller("gpt-4o"))
spender.add_node("unknown", caller("my-finetune")).set_entry_point("known")
spender.add_edge("known", "unknown").set_finish_point("unknown")
'''


def test_run_and_sessions_show_tokens_and_cost_per_node_and_in_total(
    tmp_path: Path, replay_server: ReplayServer
) -> None:
    (tmp_path / "agent.py").write_text(SPENDER)
    store = f"--store=sqlite:///{tmp_path / 'runs.db'}"
    script = replay_server.script(*(Reply(body=openai_stream(100, 20, cached=40, reasoning=5))
                                    for _ in range(2)))
    ran = chronos_in(tmp_path, "run", "agent:spender", "--session", "s-1", store,
                  MODEL_URL=script.base_url + "/v1")
    assert ran.returncode == 0, ran.stderr
    known = model.genai_prices("openai", "gpt-4o", model.Usage(
        input_tokens=100, output_tokens=20, cached_tokens=40))
    assert known is not None
    table = {line.split()[0]: line.split()[1:] for line in ran.stderr.splitlines()
             if line.split()[:1] in (["known"], ["unknown"], ["total"], ["NODE"])}
    assert table["NODE"] == ["INPUT", "OUTPUT", "CACHED", "REASONING", "COST"]
    assert table["known"] == ["100", "20", "40", "5", f"${known:.6f}"]
    assert table["unknown"] == ["100", "20", "40", "5", "unknown"]
    assert table["total"] == ["200", "40", "80", "10", "unknown"]

    listed = rows(chronos_in(tmp_path, "sessions", store).stdout)
    assert listed[0][0] == "s-1"
    assert listed[0][-2:] == ["200/40", "unknown"]
    by_node = chronos_in(tmp_path, "sessions", "--usage", store)
    assert by_node.returncode == 0, by_node.stderr
    assert rows(by_node.stdout) == [["s-1", "known", "100", "20", "40", "5", f"${known:.6f}"],
                                    ["s-1", "unknown", "100", "20", "40", "5", "unknown"],
                                    ["s-1", "total", "200", "40", "80", "10", "unknown"]]
