"""Rules about the graph of a definition: identifiers, triggers, connection ends, cycles, branches.

Each rule takes the lenient views of the normalised definition and returns issues whose pointers name
the normalised document (`validation` maps them back onto the submitted one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from libs.core import pointer as jp
from libs.core.errors import Issue
from libs.core.graph import find_cycles
from libs.core.identifiers import MAX_IDENTIFIER_LENGTH, is_valid_identifier
from libs.core.input_node import outlet_ids
from libs.core.node_kinds import TRIGGER_TYPES
from libs.core.raw_view import EdgeView, NodeView

Rule = Callable[[Sequence[NodeView], Sequence[EdgeView]], list[Issue]]


def identifier_problem(value: str) -> str | None:
    """Why `value` is not a valid identifier, or None."""
    if len(value) > MAX_IDENTIFIER_LENGTH:
        return f"must be at most {MAX_IDENTIFIER_LENGTH} characters long (has {len(value)})"
    if not is_valid_identifier(value):
        return "must be non-empty and hold only letters, digits and @ _ : -"
    return None


def node_identifiers(nodes: Sequence[NodeView], edges: Sequence[EdgeView]) -> list[Issue]:
    found: list[Issue] = []
    first: dict[str, NodeView] = {}
    for node in nodes:
        if node.identifier is None:
            continue
        where = jp.join(node.pointer, "identifier")
        problem = identifier_problem(node.identifier)
        if problem:
            found.append(Issue(where, f"node identifier {node.identifier!r} {problem}"))
        if node.identifier in first:
            other = first[node.identifier].pointer
            found.append(Issue(where, f"duplicate node identifier {node.identifier!r} (also at {other})"))
        first.setdefault(node.identifier, node)
    return found


def connection_identifiers(nodes: Sequence[NodeView], edges: Sequence[EdgeView]) -> list[Issue]:
    found: list[Issue] = []
    first: dict[str, EdgeView] = {}
    for edge in edges:
        if edge.identifier is None:
            continue
        where = jp.join(edge.pointer, "identifier")
        problem = identifier_problem(edge.identifier)
        if problem:
            found.append(Issue(where, f"connection identifier {edge.identifier!r} {problem}"))
        if edge.identifier in first:
            other = first[edge.identifier].pointer
            message = f"duplicate connection identifier {edge.identifier!r} (also at {other})"
            found.append(Issue(where, message))
        first.setdefault(edge.identifier, edge)
    return found


def triggers(nodes: Sequence[NodeView], edges: Sequence[EdgeView]) -> list[Issue]:
    found: list[Issue] = []
    if not any(n.is_trigger for n in nodes):
        known = ", ".join(sorted(TRIGGER_TYPES))
        found.append(Issue("/nodes", f"a workflow needs at least one trigger node ({known})"))
    trigger_ids = {n.identifier for n in nodes if n.is_trigger and n.identifier is not None}
    for edge in edges:
        if edge.target in trigger_ids:
            message = f"trigger node {edge.target!r} cannot have incoming connections"
            found.append(Issue(jp.join(edge.pointer, "targetIdentifier"), message))
    return found


def connection_ends(nodes: Sequence[NodeView], edges: Sequence[EdgeView]) -> list[Issue]:
    known = {n.identifier for n in nodes if n.identifier is not None}
    found: list[Issue] = []
    for edge in edges:
        for field, end in (("sourceIdentifier", edge.source), ("targetIdentifier", edge.target)):
            if end is not None and end not in known:
                found.append(Issue(jp.join(edge.pointer, field), f"there is no node {end!r}"))
        if edge.source is not None and edge.source == edge.target and edge.source in known:
            message = f"a connection cannot lead from node {edge.source!r} to itself"
            found.append(Issue(jp.join(edge.pointer, "targetIdentifier"), message))
    return found


def cycles(nodes: Sequence[NodeView], edges: Sequence[EdgeView]) -> list[Issue]:
    """One issue per cycle found, at the connection that closes it, with the path in the message."""
    usable = [e for e in edges if e.source is not None and e.target is not None and e.source != e.target]
    ids = list(dict.fromkeys(n.identifier for n in nodes if n.identifier is not None))
    pairs = [(str(e.source), str(e.target)) for e in usable]
    found: list[Issue] = []
    for cycle in find_cycles(ids, pairs):
        path = [pairs[i][0] for i in cycle] + [pairs[cycle[0]][0]]
        closing = usable[cycle[-1]]
        found.append(Issue(closing.pointer, "connections form a cycle: " + " → ".join(path)))
    return found


def branches(nodes: Sequence[NodeView], edges: Sequence[EdgeView]) -> list[Issue]:
    """Connections leaving a CONDITION name one of its options or are its (single) fallback or an
    error branch; those leaving an INPUT may name one of its outlets; other connections do neither."""
    by_id: dict[str, NodeView] = {}
    for node in nodes:
        if node.identifier is not None:
            by_id.setdefault(node.identifier, node)
    fallbacks: dict[str, EdgeView] = {}
    found: list[Issue] = []
    for edge in edges:
        source = by_id.get(edge.source) if edge.source is not None else None
        if source is None:
            continue
        if source.type == "CONDITION":
            found += _condition_edge(source, edge, fallbacks)
        elif source.type == "INPUT":
            found += _input_edge(source, edge)
        elif source.type is not None:  # an untyped node is reported on its own
            found += _plain_edge(source, edge)
    return found


def _condition_edge(source: NodeView, edge: EdgeView, fallbacks: dict[str, EdgeView]) -> list[Issue]:
    name, options = source.identifier or "", list(dict.fromkeys(source.options()))
    listed = ", ".join(options) or "none"
    if edge.on_failure:
        if edge.option is None and not edge.fallback:
            return []
        message = "an error-branch connection (onFailure: true) cannot also name an option or be a fallback"
        return [Issue(jp.join(edge.pointer, "onFailure"), message)]
    if edge.option is not None and edge.fallback:
        message = "a connection cannot both name an option and be the fallback"
        return [Issue(jp.join(edge.pointer, "fallback"), message)]
    if edge.option is not None:
        if edge.option in options:
            return []
        message = f"CONDITION node {name!r} has no option {edge.option!r}; options: {listed}"
        return [Issue(jp.join(edge.pointer, "sourceOptionIdentifier"), message)]
    if edge.fallback:
        if name not in fallbacks:
            fallbacks[name] = edge
            return []
        message = f"CONDITION node {name!r} already has a fallback connection ({fallbacks[name].pointer})"
        return [Issue(jp.join(edge.pointer, "fallback"), message)]
    message = (
        f"a connection leaving CONDITION node {name!r} must name one of its options in "
        f"sourceOptionIdentifier ({listed}) or be its fallback (fallback: true)"
    )
    return [Issue(edge.pointer, message)]


def _input_edge(source: NodeView, edge: EdgeView) -> list[Issue]:
    """A connection leaving an INPUT node may name one of its outlets (taken when that outlet's quorum
    is met); one naming none is always taken."""
    outlets = outlet_ids(source.config)
    if edge.fallback:
        return [Issue(jp.join(edge.pointer, "fallback"), "an INPUT node has no fallback; name one of its outlets")]
    if edge.option is None or edge.option in outlets:
        return []
    message = f"INPUT node {source.identifier!r} has no outlet {edge.option!r}; outlets: {', '.join(outlets) or 'none'}"
    return [Issue(jp.join(edge.pointer, "sourceOptionIdentifier"), message)]


def _plain_edge(source: NodeView, edge: EdgeView) -> list[Issue]:
    what = f"node {source.identifier!r} is a {source.type} node, not a CONDITION"
    found: list[Issue] = []
    if edge.option is not None:
        message = f"only connections leaving a CONDITION node name an option; {what}"
        found.append(Issue(jp.join(edge.pointer, "sourceOptionIdentifier"), message))
    if edge.fallback:
        message = f"only connections leaving a CONDITION node can be a fallback; {what}"
        found.append(Issue(jp.join(edge.pointer, "fallback"), message))
    return found


GRAPH_RULES: tuple[Rule, ...] = (
    node_identifiers,
    connection_identifiers,
    triggers,
    connection_ends,
    cycles,
    branches,
)
