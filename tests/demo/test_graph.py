"""The demo graph on its own: the draft streams, review pauses, the answer decides the end."""

from __future__ import annotations

import pytest

from chronos import graph
from chronos.demo import build_graph, graph_layout
from chronos.store import MemoryStore
from tests.demo.conftest import drafts, model_saying
from tests.model.replay import ReplayServer

pytestmark = pytest.mark.anyio


async def test_the_draft_streams_then_review_pauses_and_approval_finalizes(
    replay_server: ReplayServer,
) -> None:
    provider = model_saying(replay_server, *drafts(["Robots ", "dream."]))
    runner = graph.Runner(build_graph(provider), MemoryStore())

    events = runner.stream()
    async with events:
        paused = await runner.run("s1", {"prompt": "Tell me a story about a robot"})
        seen = [(e.type, e.node_id) async for e in events]

    assert paused.status == "paused"
    assert paused.node_id == "review"
    assert paused.state["category"] == "creative"
    assert paused.state["draft"] == "Robots dream."
    tokens = [e for e in seen if e[0] == "token"]
    assert tokens == [("token", "draft")] * 2
    started = [node for kind, node in seen if kind == "node_start"]
    assert started == ["classify", "draft"]
    assert seen[-1] == ("interrupt", "review")

    done = await runner.resume("s1", {"approved": True})
    assert done.status == "completed"
    assert done.state["status"] == "approved"
    assert done.state["answer"] == "Robots dream."
    await provider.aclose()


async def test_a_rejected_draft_is_written_once_more_then_rejected_for_good(
    replay_server: ReplayServer,
) -> None:
    provider = model_saying(replay_server, *drafts(["First."], ["Second."]))
    runner = graph.Runner(build_graph(provider), MemoryStore())

    first = await runner.run("s1", {"prompt": "what is a robot?"})
    assert first.state["category"] == "question"
    second = await runner.resume("s1", {"approved": False})
    assert second.status == "paused"
    assert second.state["draft"] == "Second."
    assert second.state["drafts"] == 2
    final = await runner.resume("s1", {"approved": False})
    assert final.status == "completed"
    assert final.state["status"] == "rejected"
    assert final.state["answer"] == ""
    await provider.aclose()


@pytest.mark.parametrize(
    ("prompt", "category"),
    [("Write a poem about rain", "creative"), ("How do tides work", "question"),
     ("Is it late?", "question"), ("Summarise this text", "task")],
)
async def test_classify_picks_the_category(
    replay_server: ReplayServer, prompt: str, category: str
) -> None:
    provider = model_saying(replay_server, *drafts(["ok"]))
    paused = await graph.Runner(build_graph(provider)).run("s1", {"prompt": prompt})
    assert paused.state["category"] == category
    await provider.aclose()


def test_the_layout_lists_nodes_in_order_and_every_edge(replay_server: ReplayServer) -> None:
    layout = graph_layout(build_graph(model_saying(replay_server)))
    assert layout["id"] == "chronos-demo"
    assert [n["id"] for n in layout["nodes"]] == [
        "__start__", "classify", "draft", "review", "finalize", "__end__"
    ]
    assert [n["id"] for n in layout["nodes"] if n["interrupt"]] == ["review"]
    edges = {(e["source"], e["target"], e["conditional"]) for e in layout["edges"]}
    assert edges == {
        ("__start__", "classify", False), ("classify", "draft", False),
        ("draft", "review", False), ("review", "finalize", True), ("review", "draft", True),
        ("finalize", "__end__", False),
    }
    assert "\treview -.-> finalize;" in layout["mermaid"]  # the same description, as Mermaid
