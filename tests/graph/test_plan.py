"""The pure step planner: merging updates through reducers, and choosing the next step."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronos import graph
from chronos.errors import NodeError, RouterError
from chronos.graph._plan import apply_updates, entry_nodes, next_nodes, normalize_update


def noop(state: dict[str, Any]) -> None:
    return None


def reducing_graph() -> graph.CompiledGraph:
    return (
        graph.StateGraph(
            "g",
            reducers={"log": graph.append, "meta": graph.merge, "total": lambda a, b: (a or 0) + b},
        )
        .add_node("a", noop)
        .set_entry_point("a")
        .set_finish_point("a")
        .compile()
    )


def test_reducers_replace_append_merge_and_custom() -> None:
    g = reducing_graph()
    state = {"log": ["x"], "meta": {"a": 1}, "total": 1, "name": "old"}
    new = apply_updates(g, state, [
        {"log": ["y"], "meta": {"b": 2}, "total": 2, "name": "new"},
        {"log": "z", "total": 3},
    ])
    assert new == {"log": ["x", "y", "z"], "meta": {"a": 1, "b": 2}, "total": 6, "name": "new"}
    assert state == {"log": ["x"], "meta": {"a": 1}, "total": 1, "name": "old"}  # untouched


@given(st.permutations(["a", "b", "c", "d"]))
def test_parallel_updates_merge_in_schedule_order_whatever_the_finish_order(
    finish_order: list[str],
) -> None:
    g = reducing_graph()
    updates = {n: {"log": [n], "name": n} for n in "abcd"}
    scheduled = ["a", "b", "c", "d"]
    # The runner always passes updates in schedule order, however the branches finished.
    merged = apply_updates(g, {}, [updates[n] for n in scheduled])
    assert merged == {"log": ["a", "b", "c", "d"], "name": "d"}
    assert sorted(finish_order) == scheduled


def test_returning_the_given_state_counts_only_new_values_as_changes() -> None:
    state = {"log": ["x"], "n": 1}
    given_state = dict(state)
    given_state["n"] = 2
    given_state["extra"] = True
    assert normalize_update("a", given_state, state, given_state) == {"n": 2, "extra": True}
    assert normalize_update("a", given_state, state, None) == {}
    assert normalize_update("a", given_state, state, {"n": 1}) == {"n": 1}
    with pytest.raises(TypeError, match="node 'a' returned list"):
        normalize_update("a", given_state, state, [1])


def test_next_nodes_follows_static_edges_routers_and_merges_branches() -> None:
    g = (
        graph.StateGraph("g")
        .add_node("plan", noop).add_node("web", noop).add_node("docs", noop)
        .add_node("write", noop).add_node("review", noop)
        .set_entry_point("plan")
        .add_edge("plan", ["web", "docs"])
        .add_edge(["web", "docs"], "write")
        .add_conditional_edge("write", lambda s: "done" if s["ok"] else "again",
                              {"done": graph.END, "again": "review"})
        .add_conditional_edge("review", lambda s: ["web", "docs"])
        .compile()
    )
    assert next_nodes(g, {}, ["plan"]) == ("web", "docs")
    assert next_nodes(g, {}, ["web", "docs"]) == ("write",)
    assert next_nodes(g, {"ok": True}, ["write"]) == ()
    assert next_nodes(g, {"ok": False}, ["write"]) == ("review",)
    assert next_nodes(g, {}, ["review"]) == ("web", "docs")


def route_to(state: dict[str, Any]) -> Any:
    return state["to"]


def test_a_router_naming_an_unknown_node_is_a_router_error() -> None:
    g = (
        graph.StateGraph("g").add_node("a", noop).add_node("b", noop).set_entry_point("a")
        .add_conditional_edge("a", route_to).set_finish_point("b").compile()
    )
    with pytest.raises(RouterError, match="router route_to of 'a' returned 'nope': no node "
                       "'nope' to route to") as caught:
        next_nodes(g, {"to": "nope"}, ["a"])
    assert isinstance(caught.value, NodeError)
    assert (caught.value.node_id, caught.value.router, caught.value.returned) == (
        "a", "route_to", "'nope'")
    assert next_nodes(g, {"to": graph.END}, ["a"]) == ()
    assert next_nodes(g, {"to": ("b", graph.END)}, ["a"]) == ("b",)


@pytest.mark.parametrize(("answer", "reason"), [
    (None, "expected a node id or a list of them"),
    (3, "expected a node id or a list of them"),
    ({"b"}, "expected a node id or a list of them"),
    (["b", None], "None is not a node id"),
    ([["b"]], "['b'] is not a node id"),
])
def test_a_router_returning_no_node_id_is_a_router_error_naming_it(
    answer: Any, reason: str
) -> None:
    g = (
        graph.StateGraph("g").add_node("a", noop).add_node("b", noop).set_entry_point("a")
        .add_conditional_edge("a", route_to, ["b"]).set_finish_point("b").compile()
    )
    with pytest.raises(RouterError) as caught:
        next_nodes(g, {"to": answer}, ["a"])
    assert str(caught.value) == f"router route_to of 'a' returned {answer!r}: {reason}"
    assert caught.value.returned == repr(answer)


def test_an_entry_router_returning_no_node_id_is_a_router_error() -> None:
    entry = (
        graph.StateGraph("g").add_node("b", noop).set_finish_point("b")
        .add_conditional_edge(graph.START, lambda s: 7).compile()
    )
    with pytest.raises(RouterError, match=r"router <lambda> of '__start__' returned 7"):
        entry_nodes(entry, {})


def test_a_long_answer_is_cut_in_the_error() -> None:
    g = (
        graph.StateGraph("g").add_node("a", noop).set_entry_point("a")
        .add_conditional_edge("a", route_to).compile()
    )
    with pytest.raises(RouterError) as caught:
        next_nodes(g, {"to": 10**1000}, ["a"])
    assert len(caught.value.returned) == 200
