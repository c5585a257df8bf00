"""A workflow as a Mermaid flowchart or a Graphviz DOT digraph: nodes by type, edges labelled with the
condition option they belong to, the fallback, or the error branch."""

from __future__ import annotations

import json

from libs.core.definition import Connection, Node, Workflow

FORMATS = ("mermaid", "dot")


def node_label(node: Node) -> str:
    title = node.title or node.identifier
    return f"{title} ({node.type})" if title == node.identifier else f"{title}: {node.identifier} ({node.type})"


def edge_label(workflow: Workflow, conn: Connection) -> str | None:
    if conn.onFailure:
        return "on failure"
    if conn.fallback:
        return "otherwise"
    if conn.sourceOptionIdentifier is None:
        return None
    source = next((n for n in workflow.nodes if n.identifier == conn.sourceIdentifier), None)
    options = source.config.get("options", []) if source is not None else []
    for option in options if isinstance(options, list) else []:
        if isinstance(option, dict) and option.get("identifier") == conn.sourceOptionIdentifier:
            return str(option.get("title") or conn.sourceOptionIdentifier)
    return conn.sourceOptionIdentifier


# ---- Mermaid ------------------------------------------------------------------------------------

def _mermaid_text(value: str) -> str:
    return value.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _mermaid_node(key: str, node: Node) -> str:
    label = f'"{_mermaid_text(node_label(node))}"'
    if node.is_trigger:
        return f"  {key}([{label}])"
    if node.type == "CONDITION":
        return f"  {key}{{{label}}}"
    return f"  {key}[{label}]"


def mermaid(workflow: Workflow) -> str:
    """Node keys are `n0`, `n1`, ... since identifiers may hold characters Mermaid ids cannot."""
    keys = {n.identifier: f"n{i}" for i, n in enumerate(workflow.nodes)}
    lines = ["flowchart TD", *(_mermaid_node(keys[n.identifier], n) for n in workflow.nodes)]
    for conn in workflow.connections:
        label = edge_label(workflow, conn)
        arrow = "-.->" if conn.onFailure else "-->"
        shown = f'|"{_mermaid_text(label)}"|' if label else ""
        lines.append(f"  {keys[conn.sourceIdentifier]} {arrow}{shown} {keys[conn.targetIdentifier]}")
    return "\n".join(lines)


# ---- DOT ----------------------------------------------------------------------------------------

def _dot_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _dot_shape(node: Node) -> str:
    return "oval" if node.is_trigger else "diamond" if node.type == "CONDITION" else "box"


def dot(workflow: Workflow) -> str:
    lines = [f"digraph {_dot_string(workflow.identifier)} {{", "  rankdir=TB;",
             '  node [fontname="sans-serif"];']
    for node in workflow.nodes:
        lines.append(f"  {_dot_string(node.identifier)} [label={_dot_string(node_label(node))}, "
                     f"shape={_dot_shape(node)}];")
    for conn in workflow.connections:
        attrs = []
        label = edge_label(workflow, conn)
        if label:
            attrs.append(f"label={_dot_string(label)}")
        if conn.onFailure:
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_dot_string(conn.sourceIdentifier)} -> {_dot_string(conn.targetIdentifier)}{suffix};")
    lines.append("}")
    return "\n".join(lines)


def render(workflow: Workflow, fmt: str) -> str:
    return dot(workflow) if fmt == "dot" else mermaid(workflow)
