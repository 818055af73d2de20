"""`compiled.draw_mermaid()` and `compiled.describe()`: one description of the graph."""

from __future__ import annotations

from typing import Any

from chronos import graph


def review_graph() -> graph.CompiledGraph:
    def triage(state: dict[str, Any]) -> graph.Command:
        return graph.Command(goto="write")

    return (
        graph.StateGraph("drawn")
        .add_node("triage", triage, destinations=["write", graph.END])
        .add_node("write", lambda s: None).add_interrupt_node("approve")
        .add_node("a (b)", lambda s: None)
        .set_entry_point("triage").add_edge("write", "approve")
        .add_conditional_edges("approve", lambda s: "a (b)", {"ok": "a (b)", "redo": "write"})
        .set_finish_point("a (b)").compile()
    )


def test_draw_mermaid_writes_langgraphs_flowchart() -> None:
    assert review_graph().draw_mermaid() == "\n".join([
        "---", "config:", "  flowchart:", "    curve: linear", "---", "graph TD;",
        "\t__start__([<p>__start__</p>]):::first",
        "\ttriage(triage)",
        "\twrite(write)",
        "\tapprove(approve<hr/><small><em>interrupt before</em></small>)",
        "\ta_20__28_b_29_(a &#40;b&#41;)",
        "\t__end__([<p>__end__</p>]):::last",
        "\t__start__ --> triage;",
        "\ttriage -.-> write;",
        "\ttriage -.-> __end__;",
        "\twrite --> approve;",
        "\tapprove -.-> a_20__28_b_29_;",
        "\tapprove -.-> write;",
        "\ta_20__28_b_29_ --> __end__;",
        "\tclassDef default fill:#f2f0ff,line-height:1.2",
        "\tclassDef first fill-opacity:0",
        "\tclassDef last fill:#bfb6fc",
    ]) + "\n"


def test_describe_is_the_same_graph_as_data() -> None:
    description = review_graph().describe()
    assert [n["id"] for n in description["nodes"]] == [
        "__start__", "triage", "write", "approve", "a (b)", "__end__"]
    assert ("triage", "__end__", True) in {
        (e["source"], e["target"], e["conditional"]) for e in description["edges"]}
