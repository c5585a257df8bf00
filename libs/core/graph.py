"""The node graph of a valid workflow: adjacency, triggers and a topological order, built once.

`Graph.of(workflow)` caches the graph per `Workflow` object (a frozen model, so its graph never
changes); the cache entry goes away with the workflow. `find_cycles` also serves validation, which
runs before a `Workflow` exists.
"""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from libs.core.definition import Connection, Node, Workflow

_CACHE: dict[int, tuple[weakref.ref[Workflow], Graph]] = {}


@dataclass(frozen=True, eq=False)
class Graph:
    nodes: Mapping[str, Node]
    """Node by identifier, in declaration order."""
    incoming: Mapping[str, tuple[Connection, ...]]
    """Connections into each node (every node is a key), in declaration order."""
    outgoing: Mapping[str, tuple[Connection, ...]]
    """Connections out of each node (every node is a key), in declaration order."""
    triggers: tuple[str, ...]
    order: tuple[str, ...]
    """A topological order; among nodes ready at the same time, declaration order."""

    @classmethod
    def of(cls, workflow: Workflow) -> Graph:
        """The graph of `workflow`, built on first use and cached for the object's lifetime."""
        key = id(workflow)
        cached = _CACHE.get(key)
        if cached is not None and cached[0]() is workflow:
            return cached[1]
        graph = cls.build(workflow)
        _CACHE[key] = (weakref.ref(workflow), graph)
        weakref.finalize(workflow, _CACHE.pop, key, None)
        return graph

    @classmethod
    def build(cls, workflow: Workflow) -> Graph:
        nodes = {n.identifier: n for n in workflow.nodes}
        incoming: dict[str, list[Connection]] = {n: [] for n in nodes}
        outgoing: dict[str, list[Connection]] = {n: [] for n in nodes}
        for conn in workflow.connections:
            outgoing.setdefault(conn.sourceIdentifier, []).append(conn)
            incoming.setdefault(conn.targetIdentifier, []).append(conn)
        edges = [(c.sourceIdentifier, c.targetIdentifier) for c in workflow.connections]
        return cls(
            nodes=nodes,
            incoming={k: tuple(v) for k, v in incoming.items()},
            outgoing={k: tuple(v) for k, v in outgoing.items()},
            triggers=tuple(n.identifier for n in workflow.nodes if n.is_trigger),
            order=topological_sort(list(nodes), edges),
        )

    def topological_order(self) -> tuple[str, ...]:
        return self.order

    def successors(self, node_id: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.targetIdentifier for c in self.outgoing.get(node_id, ())))

    def predecessors(self, node_id: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.sourceIdentifier for c in self.incoming.get(node_id, ())))


def topological_sort(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """Kahn's algorithm, ties broken by position in `nodes`. ValueError if there is a cycle."""
    position = {n: i for i, n in enumerate(nodes)}
    indegree = dict.fromkeys(position, 0)
    targets: dict[str, list[str]] = {n: [] for n in position}
    for source, target in edges:
        if source in position and target in position:
            targets[source].append(target)
            indegree[target] += 1
    ready = [position[n] for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        order.append(node)
        for target in targets[node]:
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, position[target])
    if len(order) != len(position):
        raise ValueError("the graph has a cycle")
    return tuple(order)


def find_cycles(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> list[list[int]]:
    """Cycles found by a depth-first search, each as the indices (into `edges`) of its edges in path
    order; one per back edge. Edges to unknown nodes are ignored."""
    adjacency: dict[str, list[tuple[int, str]]] = {n: [] for n in nodes}
    for index, (source, target) in enumerate(edges):
        if source in adjacency and target in adjacency:
            adjacency[source].append((index, target))
    done: set[str] = set()
    cycles: list[list[int]] = []
    for root in adjacency:
        if root not in done:
            _search(root, adjacency, done, cycles)
    return cycles


def _search(
    root: str, adjacency: dict[str, list[tuple[int, str]]], done: set[str], cycles: list[list[int]]
) -> None:
    stack = [(root, iter(adjacency[root]))]
    on_stack = {root: 0}
    via: list[int] = []  # via[k] is the edge from stack[k] to stack[k + 1]
    while stack:
        node, pending = stack[-1]
        step = next(pending, None)
        if step is None:
            stack.pop()
            del on_stack[node]
            done.add(node)
            if via:
                via.pop()
            continue
        index, target = step
        if target in on_stack:
            cycles.append([*via[on_stack[target] :], index])
        elif target not in done:
            on_stack[target] = len(stack)
            stack.append((target, iter(adjacency[target])))
            via.append(index)
