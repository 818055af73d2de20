"""A compiled graph described for drawing: one description, as data and as Mermaid text.

The demo page draws the data form itself; `draw_mermaid` writes the same nodes and edges in
the flowchart syntax LangGraph's `draw_mermaid()` uses, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from chronos.graph._types import END, START

if TYPE_CHECKING:
    from chronos.graph._builder import CompiledGraph

__all__ = ["describe", "draw_mermaid"]


def describe(compiled: CompiledGraph) -> dict[str, Any]:
    """What a page needs to draw `compiled`: its nodes in order and its edges.

    `{"id", "nodes": [{"id", "interrupt"}], "edges": [{"source", "target", "conditional"}]}`,
    with the virtual `__start__` first and `__end__` last among the nodes. Conditional edges
    are a router's declared targets and a node's `destinations` (where its `Command` may go);
    a router declared without targets adds none, as it could go anywhere.
    """
    nodes = [{"id": START, "interrupt": False}]
    nodes += [{"id": spec.id, "interrupt": spec.interrupt} for spec in compiled.nodes.values()]
    nodes.append({"id": END, "interrupt": False})
    edges: list[dict[str, Any]] = []

    def add(source: str, targets: Iterable[str], conditional: bool) -> None:
        edges.extend(
            {"source": source, "target": target, "conditional": conditional}
            for target in dict.fromkeys(targets)
        )

    add(START, compiled.entry, False)
    if compiled.entry_branch is not None and compiled.entry_branch.targets is not None:
        add(START, compiled.entry_branch.targets.values(), True)
    for node_id, spec in compiled.nodes.items():
        static = compiled.edges.get(node_id)
        branch = compiled.branches.get(node_id)
        if static is not None:
            # A node whose static targets were all END has no successors left in `edges`.
            add(node_id, static or (END,), False)
        elif branch is not None and branch.targets is not None:
            add(node_id, branch.targets.values(), True)
        add(node_id, spec.destinations, True)
    return {"id": compiled.id, "nodes": nodes, "edges": edges}


def draw_mermaid(compiled: CompiledGraph) -> str:
    """`describe(compiled)` as a Mermaid flowchart (`graph TD`), LangGraph's layout and styles."""
    description = describe(compiled)
    lines = ["---", "config:", "  flowchart:", "    curve: linear", "---", "graph TD;"]
    for node in description["nodes"]:
        node_id = node["id"]
        if node_id == START:
            lines.append(f"\t{_name(node_id)}([<p>{node_id}</p>]):::first")
        elif node_id == END:
            lines.append(f"\t{_name(node_id)}([<p>{node_id}</p>]):::last")
        elif node["interrupt"]:
            lines.append(f"\t{_name(node_id)}({_label(node_id)}"
                         f"<hr/><small><em>interrupt before</em></small>)")
        else:
            lines.append(f"\t{_name(node_id)}({_label(node_id)})")
    for edge in description["edges"]:
        arrow = "-.->" if edge["conditional"] else "-->"
        lines.append(f"\t{_name(edge['source'])} {arrow} {_name(edge['target'])};")
    lines += ["\tclassDef default fill:#f2f0ff,line-height:1.2",
              "\tclassDef first fill-opacity:0", "\tclassDef last fill:#bfb6fc"]
    return "\n".join(lines) + "\n"


def _name(node_id: str) -> str:
    # Mermaid ids allow letters, digits, `_` and `-`; anything else would end the id early.
    return "".join(c if c.isalnum() or c in "_-" else f"_{ord(c):x}_" for c in node_id)


def _label(node_id: str) -> str:
    return node_id.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        '"', "&quot;").replace("(", "&#40;").replace(")", "&#41;")
