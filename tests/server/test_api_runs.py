"""Run control through `langgraph_sdk`: cancel, multitask strategies, disconnects, interrupts."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError

from chronos.server._run_request import parse_run_request
from tests.server.api_server import Served, serving

pytestmark = pytest.mark.anyio

SLOW = {"steps": [], "delay": 30}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving("tests.server.api_graphs:agent", "tests.server.api_graphs:approval",
                 "tests.server.api_graphs:asking", "tests.server.api_graphs:routed") as s:
        yield s


async def _status(client: object, thread_id: str, run_id: str) -> str:
    run = await client.runs.get(thread_id, run_id)  # type: ignore[attr-defined]
    return str(run["status"])


async def _until_running(client: object, thread_id: str, run_id: str) -> None:
    for _ in range(200):
        if await _status(client, thread_id, run_id) == "running":
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the run never started")


async def test_cancel_interrupts_a_running_run_and_keeps_its_last_checkpoint(
    served: Served,
) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread, "agent", input=SLOW)
    await _until_running(client, thread, run["run_id"])
    await client.runs.cancel(thread, run["run_id"], wait=True)
    assert await _status(client, thread, run["run_id"]) == "interrupted"
    state = await client.threads.get_state(thread)
    assert state["next"] == ["write"]  # the node in flight runs again on resume
    assert (await client.threads.get(thread))["status"] == "idle"


async def test_reject_refuses_a_second_run_with_409_and_loses_nothing(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    first = await client.runs.create(thread, "agent", input={"steps": [], "delay": 0.5})
    with pytest.raises(ConflictError):
        await client.runs.create(thread, "agent", input={"steps": []},
                                 multitask_strategy="reject")
    assert await client.runs.join(thread, first["run_id"]) == {
        "steps": ["plan", "write", "review"], "text": "Once upon a time", "delay": 0.5}
    assert len(await client.runs.list(thread)) == 1


async def test_interrupt_cancels_the_running_run_then_starts(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    first = await client.runs.create(thread, "agent", input=SLOW)
    await _until_running(client, thread, first["run_id"])
    second = await client.runs.create(thread, "agent", input={"delay": 0},
                                      multitask_strategy="interrupt")
    await client.runs.join(thread, second["run_id"])
    assert await _status(client, thread, first["run_id"]) == "interrupted"
    assert await _status(client, thread, second["run_id"]) == "success"


async def test_rollback_forgets_the_running_run_and_its_state(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    first = await client.runs.create(thread, "agent", input=SLOW)
    await _until_running(client, thread, first["run_id"])
    second = await client.runs.create(thread, "agent", input={"steps": ["again"], "delay": 0},
                                      multitask_strategy="rollback")
    values = await client.runs.join(thread, second["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(thread, first["run_id"])
    # Started from what the rolled-back run started from (nothing), not from its "plan" step.
    assert values["steps"] == ["again", "plan", "write", "review"]


async def test_enqueue_runs_one_after_the_other(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    first = await client.runs.create(thread, "agent", input={"steps": [], "delay": 2})
    second = await client.runs.create(thread, "agent", input={"steps": ["next"]},
                                      multitask_strategy="enqueue")
    assert await _status(client, thread, second["run_id"]) == "pending"
    values = await client.runs.join(thread, second["run_id"])
    assert await _status(client, thread, first["run_id"]) == "success"
    assert values["steps"] == ["plan", "write", "review", "next", "plan", "write", "review"]


async def test_on_disconnect_cancel_cancels_the_run_when_the_client_goes(
    served: Served,
) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    body = {"assistant_id": "agent", "input": SLOW, "stream_mode": ["updates"],
            "on_disconnect": "cancel"}
    async with httpx.AsyncClient(base_url=served.url) as raw, raw.stream(
            "POST", f"/threads/{thread}/runs/stream", json=body) as response:
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
        async for line in response.aiter_lines():
            if line.startswith("data:") and '"plan"' in line:
                break  # the run is in its slow node: leave
    for _ in range(200):
        if await _status(client, thread, run_id) == "interrupted":
            break
        await asyncio.sleep(0.02)
    assert await _status(client, thread, run_id) == "interrupted"


async def test_on_disconnect_continue_lets_the_run_finish(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    body = {"assistant_id": "agent", "input": {"steps": [], "delay": 0.3},
            "stream_mode": ["updates"]}
    async with httpx.AsyncClient(base_url=served.url) as raw, raw.stream(
            "POST", f"/threads/{thread}/runs/stream", json=body) as response:
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
    assert (await client.runs.join(thread, run_id))["steps"] == ["plan", "write", "review"]


async def test_interrupt_node_pauses_then_resumes_with_an_update(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    parts = [(p.event, p.data) async for p in client.runs.stream(
        thread, "approval", input={"steps": []}, stream_mode="updates")]
    assert parts[-1] == ("updates", {"__interrupt__": []})
    state = await client.threads.get_state(thread)
    assert state["next"] == ["review"]
    assert [t["name"] for t in state["tasks"]] == ["review"]
    assert (await client.threads.get(thread))["status"] == "interrupted"
    values = await client.runs.wait(thread, "approval", command={"resume": {"approved": True}})
    assert values["approved"] is True
    assert values["steps"] == ["plan", "write", "review"]
    assert (await client.threads.get(thread))["status"] == "idle"


async def test_interrupt_before_pauses_any_graph_at_the_named_node(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "agent", input={"steps": []}, interrupt_before=["write"])
    assert (await client.threads.get_state(thread))["next"] == ["write"]
    values = await client.runs.wait(thread, "agent", input=None)
    assert values["steps"] == ["plan", "write", "review"]


async def test_time_travel_from_a_checkpoint(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "agent", input={"steps": []})
    history = await client.threads.get_history(thread, limit=10)
    after_plan = next(h for h in history if h["next"] == ["write"])
    values = await client.runs.wait(thread, "agent", input=None,
                                    checkpoint_id=after_plan["checkpoint"]["checkpoint_id"])
    assert values["steps"] == ["plan", "write", "review"]


async def test_interrupt_carries_its_payload_and_command_resume_answers_it(
    served: Served,
) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    parts = [(p.event, p.data) async for p in client.runs.stream(
        thread, "asking", input={"topic": "tea"}, stream_mode=["updates", "values"])]
    asked = [{"value": {"question": "publish tea?"}, "id": parts[-2][1]["__interrupt__"][0]["id"]}]
    streamed = [{**asked[0], "response_schema": None}]
    assert parts[-2] == ("updates", {"__interrupt__": streamed})
    assert parts[-1] == ("values", {"topic": "tea", "steps": ["plan"], "__interrupt__": streamed})
    state = await client.threads.get_state(thread)
    assert state["next"] == ["ask"]
    assert state["tasks"][0]["interrupts"] == asked
    assert state["interrupts"] == asked
    described = await client.threads.get(thread)
    assert described["status"] == "interrupted"
    assert list(described["interrupts"].values()) == [asked]
    values = await client.runs.wait(thread, "asking", command={"resume": "yes"})
    assert values["answer"] == "yes"
    assert values["steps"] == ["plan", "ask", "review"]


async def test_command_goto_runs_the_named_node(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "asking", input={"topic": "tea"})  # paused at ask
    values = await client.runs.wait(thread, "asking",
                                    command={"goto": "review", "update": {"topic": "jam"}})
    assert values["steps"] == ["plan", "review"]
    assert values["topic"] == "jam"


async def test_a_stateless_run_keeps_its_thread_only_when_asked(served: Served) -> None:
    client = get_client(url=served.url)
    kept = await client.runs.create(None, "agent", input={"steps": []}, on_completion="keep")
    assert (await client.runs.join(kept["thread_id"], kept["run_id"]))["steps"] == [
        "plan", "write", "review"]
    assert (await client.threads.get(kept["thread_id"]))["status"] == "idle"
    dropped = await client.runs.create(None, "agent", input={"steps": []})
    remaining = [t["thread_id"] for t in await client.threads.search(limit=1000)]
    assert dropped["thread_id"] not in remaining  # a stateless run's thread is never listed
    for _ in range(500):  # once the run has ended, its thread goes
        try:
            await client.threads.get(dropped["thread_id"])
        except NotFoundError:
            break
        await asyncio.sleep(0.02)
    with pytest.raises(NotFoundError):
        await client.threads.get(dropped["thread_id"])


async def test_interrupt_after_a_node_with_a_conditional_edge_pauses_once(
    served: Served,
) -> None:
    client = get_client(url=served.url)
    for skip, routed_to in ((False, "write"), (True, "review")):
        thread = (await client.threads.create())["thread_id"]
        values = await client.runs.wait(thread, "routed", input={"steps": [], "skip": skip},
                                        interrupt_after=["plan"])
        assert values["steps"] == ["plan"]
        state = await client.threads.get_state(thread)
        assert state["next"] == [routed_to]
        assert (await client.threads.get(thread))["status"] == "interrupted"
        # Resumed with the same option: `plan` does not run again, so nothing pauses again,
        # though `review` also follows `write`.
        values = await client.runs.wait(thread, "routed", input=None, interrupt_after=["plan"])
        assert values["steps"] == (["plan", "review"] if skip else ["plan", "write", "review"])
        assert (await client.threads.get_state(thread))["next"] == []


async def test_after_seconds_keeps_a_run_pending_first(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread, "agent", input={"steps": []}, after_seconds=1)
    assert await _status(client, thread, run["run_id"]) == "pending"
    assert (await client.runs.join(thread, run["run_id"]))["steps"] == ["plan", "write", "review"]


async def test_interrupt_after_pauses_once_the_node_has_run(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    values = await client.runs.wait(thread, "agent", input={"steps": []},
                                    interrupt_after=["plan"])
    assert values["steps"] == ["plan"]
    assert (await client.threads.get_state(thread))["next"] == ["write"]
    everywhere = await client.runs.wait(thread, "agent", input=None, interrupt_after="*")
    assert everywhere["steps"] == ["plan", "write"]
    assert (await client.threads.get_state(thread))["next"] == ["review"]


async def test_chronos_serve_runs_graphs_on_uvloop() -> None:
    """As `uvicorn.run` and LangGraph's server do: a loop iteration per model token costs
    uvloop a fraction of what it costs asyncio."""
    with serving("tests.server.api_graphs:event_loop") as served:
        result = await get_client(url=served.url).runs.wait(None, "event_loop", input={})
    assert isinstance(result, dict)
    assert result["loop"] == "uvloop"


async def test_chronos_serve_freezes_what_exists_at_start_up() -> None:
    """Modules, graphs and the app never become garbage: a full collection that walks them
    all stops every stream (BENCHMARKS.md, "gcstream branch")."""
    with serving("tests.server.api_graphs:collector") as served:
        result = await get_client(url=served.url).runs.wait(None, "collector", input={})
    assert isinstance(result, dict)
    assert result["frozen"] > 10_000


async def test_chronos_serve_runs_full_collections_a_tenth_as_often() -> None:
    """They walk every retained event's frame and free nothing (BENCHMARKS.md, "crowd
    branch"); the younger generations keep Python's thresholds."""
    with serving("tests.server.api_graphs:collector") as served:
        result = await get_client(url=served.url).runs.wait(None, "collector", input={})
    assert isinstance(result, dict)
    assert result["thresholds"] == [*gc.get_threshold()[:2], 10 * gc.get_threshold()[2]]


async def test_durability_exit_writes_only_the_checkpoint_a_run_ends_with(
        served: Served) -> None:
    client = get_client(url=served.url)
    written = {}
    for durability in ("sync", "async", "exit"):
        thread = (await client.threads.create())["thread_id"]
        values = await client.runs.wait(thread, "agent", input={"steps": []},
                                        durability=durability)  # type: ignore[arg-type]
        assert values["steps"] == ["plan", "write", "review"]
        history = await client.threads.get_history(thread)
        written[durability] = len(history)
        assert history[0]["values"] == values  # the latest, newest first
    assert written["exit"] == 1
    assert written["sync"] == written["async"] > 1
    async with httpx.AsyncClient(base_url=served.url) as http:
        refused = await http.post("/runs/wait", json={"assistant_id": "agent", "input": {},
                                                      "durability": "never"})
    assert refused.status_code == 422
    assert "durability" in refused.json()["detail"]


def test_runs_write_checkpoints_behind_the_next_step_unless_asked_as_on_langgraph() -> None:
    # LangGraph's server takes "async" when the body names no durability (langgraph_api
    # models/run.py); its SDK clients expect its semantics.
    assert parse_run_request({"assistant_id": "agent"},
                             default_disconnect="continue").durability == "async"
    assert parse_run_request({"assistant_id": "agent", "durability": "sync"},
                             default_disconnect="continue").durability == "sync"
