"""Building and compiling graphs: chaining, immutability, and every problem reported at once."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from chronos import graph
from chronos.errors import InvalidGraphError


def step(state: dict[str, Any]) -> dict[str, Any]:
    return {}


def problems_of(g: graph.StateGraph) -> list[str]:
    with pytest.raises(InvalidGraphError) as caught:
        g.compile()
    return caught.value.problems


def test_methods_chain_and_compile_a_linear_graph() -> None:
    compiled = (
        graph.StateGraph("g")
        .add_node("a", step)
        .add_node("b", step)
        .set_entry_point("a")
        .add_edge("a", "b")
        .set_finish_point("b")
        .compile()
    )
    assert compiled.id == "g"
    assert list(compiled.nodes) == ["a", "b"]
    assert compiled.entry == ("a",)
    assert compiled.edges == {"a": ("b",), "b": ()}


def test_compiled_graph_is_immutable_and_independent_of_the_builder() -> None:
    g = graph.StateGraph("g").add_node("a", step).set_entry_point("a").set_finish_point("a")
    compiled = g.compile()
    g.add_node("b", step)
    assert list(compiled.nodes) == ["a"]
    with pytest.raises(TypeError):
        compiled.nodes["b"] = compiled.nodes["a"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        compiled.id = "other"  # type: ignore[misc]


def test_every_problem_is_reported_at_once_each_naming_its_node() -> None:
    g = (
        graph.StateGraph("bad")
        .add_node("a", step)
        .add_node("a", step)  # duplicate
        .add_node("b", step)
        .add_node("c", step)  # no out-edge and unreachable
        .add_node("d", step)
        .add_edge("a", "b")
        .add_edge("a", "ghost")  # second static edge, unknown target
        .add_conditional_edge("b", lambda s: "x", {"go": "phantom", "stop": graph.END})
        .add_edge("d", graph.END)
    )
    problems = problems_of(g)
    text = "\n".join(problems)
    assert "duplicate node id 'a'" in text
    assert "no entry point" in text
    assert "unknown node 'ghost'" in text
    assert "node 'a' has 2 static out-edges" in text
    assert "may route to unknown node 'phantom'" in text
    assert "node 'c' has no outgoing edge" in text
    assert "node 'c' is unreachable" in text
    assert "node 'd' is unreachable" in text
    assert len(problems) >= 8


def test_unreachable_unknown_source_and_mixed_edges() -> None:
    g = (
        graph.StateGraph("bad")
        .add_node("a", step)
        .add_node("b", step)
        .add_node("island", step)
        .set_entry_point("a")
        .add_edge("a", "b")
        .add_conditional_edge("a", lambda s: "b", ["b"])
        .add_edge("b", graph.END)
        .add_edge("island", graph.END)
        .add_edge("nowhere", "b")
    )
    text = "\n".join(problems_of(g))
    assert "node 'a' has both a static and a conditional edge" in text
    assert "node 'island' is unreachable" in text
    assert "edge from unknown node 'nowhere'" in text


def test_router_without_a_map_makes_every_node_reachable() -> None:
    compiled = (
        graph.StateGraph("g")
        .add_node("a", step)
        .add_node("b", step)
        .set_entry_point("a")
        .add_conditional_edge("a", lambda s: "b")
        .set_finish_point("b")
        .compile()
    )
    assert set(compiled.branches) == {"a"}


def test_fan_out_in_one_call_is_allowed_and_async_routers_are_not() -> None:
    async def router(state: dict[str, Any]) -> str:
        return "a"

    ok = (
        graph.StateGraph("g")
        .add_node("a", step).add_node("b", step).add_node("c", step)
        .set_entry_point("a")
        .add_edge("a", ["b", "c"])
        .add_edge(["b", "c"], graph.END)
        .compile()
    )
    assert ok.edges["a"] == ("b", "c")
    bad = (
        graph.StateGraph("g").add_node("a", step).add_conditional_edge(graph.START, router)
        .set_finish_point("a")
    )
    assert any("router of '__start__' is async" in p for p in problems_of(bad))


def test_reserved_ids_are_rejected_and_subgraphs_with_interrupts_are_not() -> None:
    inner = (
        graph.StateGraph("inner").add_interrupt_node("ask").set_entry_point("ask")
        .set_finish_point("ask").compile()
    )
    g = (
        graph.StateGraph("g")
        .add_node(graph.END, step)
        .add_subgraph("sub", inner)
        .set_entry_point("sub")
        .set_finish_point("sub")
    )
    problems = problems_of(g)
    assert any("node id '__end__' is reserved" in p for p in problems)
    assert not any("'sub'" in p for p in problems)
    ok = graph.StateGraph("g").add_subgraph("sub", inner).set_entry_point("sub")
    assert ok.set_finish_point("sub").compile().nodes["sub"].subgraph is inner


def test_async_callables_are_detected() -> None:
    class Node:
        async def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
            return {}

    async def fn(state: dict[str, Any]) -> None:
        return None

    compiled = (
        graph.StateGraph("g").add_node("a", Node()).add_node("b", fn).add_node("c", step)
        .set_entry_point("a").add_edge("a", "b").add_edge("b", "c").set_finish_point("c")
        .compile()
    )
    assert [compiled.nodes[n].is_async for n in "abc"] == [True, True, False]


class CountingId(str):
    """A node id that counts how often it is hashed or compared: the work done with ids."""

    used = 0

    def __hash__(self) -> int:
        CountingId.used += 1
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        CountingId.used += 1
        return str.__eq__(self, other)


def long_chain(length: int, *, routed: bool, ids_as: type[str] = str) -> graph.StateGraph:
    ids = [ids_as(f"n{i}") for i in range(length)]
    g = graph.StateGraph("long")
    for node_id in ids:
        g.add_node(node_id, step, inline=True)
    g.set_entry_point(ids[0]).set_finish_point(ids[-1])
    for source, target in itertools.pairwise(ids):
        if routed:
            g.add_conditional_edge(source, lambda s, target=target: target)
        else:
            g.add_edge(source, target)
    return g


@pytest.mark.parametrize("routed", [False, True])
def test_ten_thousand_nodes_compile_and_validate(routed: bool) -> None:
    # Validation is linear; its timing is in RELIABILITY.md, never asserted here.
    compiled = long_chain(10_000, routed=routed).compile()
    assert len(compiled.nodes) == 10_000
    assert compiled.entry == ("n0",)
    assert set(compiled.branches) == ({f"n{i}" for i in range(9_999)} if routed else set())
    if not routed:
        assert compiled.edges["n0"] == ("n1",)
        assert compiled.edges["n9999"] == ()

    broken = long_chain(10_000, routed=routed).add_node("island", step).add_node("n5", step)
    broken.add_edge("island", graph.END)
    assert problems_of(broken) == [
        "duplicate node id 'n5'",
        *([] if routed else ["node 'island' is unreachable from the entry point"]),
    ]


@pytest.mark.parametrize("routed", [False, True])
def test_validation_work_grows_linearly_with_the_graph(routed: bool) -> None:
    # Work counted, not timed: a set or dict operation on a node id hashes it, a list search
    # compares it, so ten times the nodes must cost about ten times the uses of ids (a walk
    # or a search per node would cost a hundred times).
    work = {}
    for length in (1_000, 10_000):
        g = long_chain(length, routed=routed, ids_as=CountingId)
        CountingId.used = 0
        g.compile()
        work[length] = CountingId.used
    assert work[1_000] > 1_000
    assert work[10_000] < 12 * work[1_000]


def test_an_inline_node_with_a_timeout_is_refused() -> None:
    g = graph.StateGraph("t").add_node("a", step, inline=True, timeout=1.0).set_entry_point("a")
    g.set_finish_point("a")
    assert problems_of(g) == [
        "node 'a' is inline and has a timeout: nothing can stop a node running on the event "
        "loop; drop inline=True to time it"
    ]
