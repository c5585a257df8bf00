from __future__ import annotations

import gc

import pytest
from port_deploy_example import deploy_service

from libs.core import graph as graph_module
from libs.core.graph import Graph, find_cycles, topological_sort
from libs.core.validation import parse_workflow


def test_graph_of_the_deploy_example() -> None:
    graph = Graph.of(parse_workflow(deploy_service()))
    assert graph.triggers == ("trigger",)
    assert graph.topological_order() == ("trigger", "check-env", "deploy-prod", "deploy-nonprod", "update-status")
    assert [c.sourceIdentifier for c in graph.incoming["update-status"]] == ["deploy-prod", "deploy-nonprod"]
    assert [c.sourceOptionIdentifier for c in graph.outgoing["check-env"]] == ["production", "non-production"]
    assert graph.incoming["trigger"] == ()
    assert graph.outgoing["update-status"] == ()
    assert graph.successors("check-env") == ("deploy-prod", "deploy-nonprod")
    assert graph.predecessors("update-status") == ("deploy-prod", "deploy-nonprod")
    assert graph.nodes["deploy-prod"].type == "WEBHOOK"


def test_the_graph_is_built_once_per_workflow_object() -> None:
    workflow = parse_workflow(deploy_service())
    other = parse_workflow(deploy_service())
    assert Graph.of(workflow) is Graph.of(workflow)
    assert Graph.of(other) is not Graph.of(workflow)


def test_the_cache_entry_goes_with_the_workflow() -> None:
    workflow = parse_workflow(deploy_service())
    Graph.of(workflow)
    key = id(workflow)
    assert key in graph_module._CACHE
    del workflow
    gc.collect()
    assert key not in graph_module._CACHE


def test_topological_order_breaks_ties_by_declaration_order() -> None:
    assert topological_sort(["c", "b", "a"], [("a", "b")]) == ("c", "a", "b")
    assert topological_sort(["a", "b", "c", "d"], [("a", "d"), ("b", "c"), ("c", "d")]) == ("a", "b", "c", "d")


def test_topological_sort_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_sort(["a", "b"], [("a", "b"), ("b", "a")])


def test_find_cycles_returns_the_edges_of_each_cycle_in_path_order() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "d"), ("x", "a")]
    assert find_cycles(["a", "b", "c", "d"], edges) == [[0, 1, 2], [4]]
    assert find_cycles(["a", "b"], [("a", "b")]) == []


def test_find_cycles_handles_deep_graphs_without_recursion() -> None:
    nodes = [f"n{i}" for i in range(5000)]
    edges = [(nodes[i], nodes[i + 1]) for i in range(4999)] + [("n4999", "n0")]
    assert find_cycles(nodes, edges) == [list(range(5000))]
