"""Save-time validation of DELAY, APPROVAL, SUB_WORKFLOW and FOREACH configs, and the pure child-run
batch that SUB_WORKFLOW and FOREACH share."""

from __future__ import annotations

from typing import Any

import pytest

from libs.core.child_runs import ChildBatch, child_outcome, child_run_id
from libs.core.run import Run
from libs.core.validation import validate_definition


def workflow(config: dict[str, Any]) -> dict[str, Any]:
    return {"identifier": "w", "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
        {"identifier": "n", "config": config}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "n"}]}


VALID = [
    {"type": "DELAY", "seconds": 5},
    {"type": "DELAY", "seconds": "{{ .inputs.wait }}"},
    {"type": "DELAY", "until": "2030-01-01T09:00:00Z"},
    {"type": "DELAY", "until": "{{ .inputs.when }}"},
    {"type": "APPROVAL", "assignees": ["a@example.com"], "message": "ok?", "slaSeconds": 60, "onTimeout": "continue"},
    {"type": "APPROVAL", "assignees": "{{ .inputs.approvers }}", "message": "ok?"},
    {"type": "SUB_WORKFLOW", "workflowIdentifier": "child", "tag": "$LIVE", "inputs": {"x": "{{ .inputs.x }}"}},
    {"type": "SUB_WORKFLOW", "workflowIdentifier": "child", "version": 2},
    {"type": "FOREACH", "items": "{{ .inputs.list }}", "concurrency": 3,
     "node": {"type": "WEBHOOK", "url": "http://127.0.0.1:9/{{ .item.id }}"}},
    {"type": "FOREACH", "items": [{"a": 1}], "workflowIdentifier": "child"},
    {"type": "FOREACH", "items": [1], "node": {"type": "FOREACH", "items": "{{ .item }}", "node": {"type": "NOOP"}}},
]


@pytest.mark.parametrize("config", VALID)
def test_valid_configs(config: dict[str, Any]) -> None:
    assert validate_definition(workflow(config)) == []


INVALID = [
    ({"type": "DELAY"}, "/nodes/1/config", "exactly one of `seconds` and `until`"),
    ({"type": "DELAY", "seconds": 1, "until": "2030-01-01T00:00:00Z"}, "/nodes/1/config", "exactly one"),
    ({"type": "DELAY", "seconds": 0}, "/nodes/1/config/seconds", "number > 0"),
    ({"type": "DELAY", "seconds": "soon"}, "/nodes/1/config/seconds", "number > 0"),
    ({"type": "DELAY", "until": "tomorrow"}, "/nodes/1/config/until", "not an ISO 8601 timestamp"),
    ({"type": "DELAY", "seconds": 1, "extra": 1}, "/nodes/1/config/extra", "not an allowed field"),
    ({"type": "APPROVAL", "message": "ok?"}, "/nodes/1/config/assignees", "is required"),
    ({"type": "APPROVAL", "assignees": [], "message": "ok?"}, "/nodes/1/config/assignees", "non-empty list"),
    ({"type": "APPROVAL", "assignees": ["a"], "message": "ok?", "onTimeout": "skip"},
     "/nodes/1/config/onTimeout", "one of fail, continue"),
    ({"type": "APPROVAL", "assignees": ["a"], "message": "ok?", "slaSeconds": -1}, "/nodes/1/config/slaSeconds", "> 0"),
    ({"type": "SUB_WORKFLOW"}, "/nodes/1/config/workflowIdentifier", "is required"),
    ({"type": "SUB_WORKFLOW", "workflowIdentifier": "c", "version": 1, "tag": "$LIVE"}, "/nodes/1/config", "not both"),
    ({"type": "SUB_WORKFLOW", "workflowIdentifier": "c", "inputs": [1]}, "/nodes/1/config/inputs", "an object"),
    ({"type": "SUB_WORKFLOW", "workflowIdentifier": "c", "inputs": {"x": "{{ .[ }}"}},
     "/nodes/1/config/inputs/x", "invalid jq"),
    ({"type": "FOREACH", "items": [1]}, "/nodes/1/config", "exactly one of `node` and `workflowIdentifier`"),
    ({"type": "FOREACH", "items": "all of them", "node": {"type": "NOOP"}}, "/nodes/1/config/items", "array"),
    ({"type": "FOREACH", "items": [1], "concurrency": 0, "node": {"type": "NOOP"}},
     "/nodes/1/config/concurrency", ">= 1"),
    ({"type": "FOREACH", "items": [1], "node": {"type": "WEBHOOK", "method": "POST"}},
     "/nodes/1/config/node/url", "config.node.url is required"),
    ({"type": "FOREACH", "items": [1], "node": {"type": "WEBHOOK", "url": "http://x", "method": "FETCH"}},
     "/nodes/1/config/node/method", "config.node.method must be one of"),
    ({"type": "FOREACH", "items": [1], "node": {"type": "TRANSFORM", "expression": ".["}},
     "/nodes/1/config/node/expression", "invalid jq expression"),
    ({"type": "FOREACH", "items": [1], "node": {"type": "TELEPORT"}}, "/nodes/1/config/node/type", "unknown node type"),
    ({"type": "FOREACH", "items": [1], "node": {"type": "APPROVAL", "assignees": ["a"], "message": "m"}},
     "/nodes/1/config/node/type", "would wait"),
    ({"type": "FOREACH", "items": [1], "node": {"type": "WEBHOOK", "url": "http://x", "synchronized": False}},
     "/nodes/1/config/node/synchronized", "must be synchronized"),
    ({"type": "FOREACH", "items": [1], "node": {"type": "SELF_SERVE_TRIGGER"}}, "/nodes/1/config/node/type", "trigger"),
]


@pytest.mark.parametrize(("config", "pointer", "message"), INVALID)
def test_invalid_configs_name_the_field(config: dict[str, Any], pointer: str, message: str) -> None:
    issues = validate_definition(workflow(config))
    assert any(i.pointer == pointer and message in i.message for i in issues), issues


def batch(total: int, concurrency: int, mode: str = "each") -> ChildBatch:
    return ChildBatch.new(parent_run_id="wfr_parent", parent_node_run_key="wfr_parent/each/1", mode=mode,
                          workflow="child", version=1, trigger_node="trigger", depth=1,
                          inputs=[{"i": i} for i in range(total)], concurrency=concurrency)


def finished(run_id: str, result: str = "SUCCESS") -> Run:
    return Run(id=run_id, workflow="child", version=1, status="COMPLETED", result=result,
               outputs={"out": run_id}, error=None if result == "SUCCESS" else "node 'x' failed: boom")


def test_child_ids_are_derived_from_the_parent_node_run() -> None:
    b = batch(3, 1)
    assert b.child_id(0) == child_run_id("wfr_parent/each/1", 0) == batch(3, 1).child_id(0)
    assert len({b.child_id(i) for i in range(3)}) == 3 and b.child_id(0).startswith("wfr_")


def test_window_keeps_at_most_concurrency_running_and_results_in_item_order() -> None:
    b, started = batch(4, 2).fill()
    assert started == [0, 1]
    assert b.fill() == (b, [])
    b = b.record(1, child_outcome(finished(b.child_id(1))))
    assert b.record(1, child_outcome(finished("other"))) == b, "a repeated completion changes nothing"
    b, started = b.fill()
    assert started == [2] and b.running() == [0, 2]
    for index in (2, 0):
        b = b.record(index, child_outcome(finished(b.child_id(index))))
    b, started = b.fill()
    assert started == [3] and not b.finished
    b = b.record(3, child_outcome(finished(b.child_id(3))))
    assert b.finished
    result, output = b.completion()
    assert result == "SUCCESS"
    assert [r["outputs"]["out"] for r in output["results"]] == [b.child_id(i) for i in range(4)]


def test_a_failed_child_stops_new_starts_and_fails_the_batch() -> None:
    b, _ = batch(4, 2).fill()
    b = b.record(1, child_outcome(finished(b.child_id(1), "FAILED")))
    assert b.fill() == (b, []) and not b.finished
    b = b.record(0, child_outcome(finished(b.child_id(0))))
    assert b.finished
    result, output = b.completion()
    assert result == "FAILED"
    assert output["error"]["message"].startswith(f"item 1 failed: child run {b.child_id(1)} of workflow 'child' ended FAILED")
    assert output["results"][2:] == [None, None]


def test_single_child_completion_is_the_child_outcome() -> None:
    b, _ = batch(1, 1, mode="single").fill()
    b = b.record(0, child_outcome(finished(b.child_id(0))))
    assert b.completion() == ("SUCCESS", {"runId": b.child_id(0), "result": "SUCCESS",
                                          "outputs": {"out": b.child_id(0)}})
