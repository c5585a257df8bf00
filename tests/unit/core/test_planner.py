"""Execution semantics of the pure planner: fan-out, fan-in with dead-path elimination, condition
routing, retries, terminate vs continue, error branches, completion."""

from __future__ import annotations

from typing import Any

from libs.core import planner
from libs.core.definition import Workflow
from libs.core.planner import FALLBACK
from libs.core.run import Outcome, Run, TriggerInfo
from libs.core.validation import parse_workflow


def wf(nodes: list[dict[str, Any]], connections: list[tuple[str, ...] | dict[str, Any]]) -> Workflow:
    conns = []
    for c in connections:
        if isinstance(c, dict):
            conns.append(c)
        else:
            conns.append({"sourceIdentifier": c[0], "targetIdentifier": c[1]})
    trigger = {"identifier": "t", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}}
    return parse_workflow({"identifier": "w", "nodes": [trigger, *nodes], "connections": conns})


def noop(ident: str, **extra: Any) -> dict[str, Any]:
    return {"identifier": ident, "config": {"type": "NOOP"}, **extra}


def start(w: Workflow) -> planner.Decision:
    return planner.start_run(w, run_id="wfr_x", version=1, trigger=TriggerInfo(node="t"), inputs={"a": 1}, now=0.0)


def ok(run: Run, w: Workflow, node: str, attempt: int = 1, **kw: Any) -> planner.Decision:
    d = planner.apply_outcome(w, run, node, attempt, Outcome(result="SUCCESS", output={"n": node}, **kw), 1.0)
    assert d is not None
    return d


def fail(run: Run, w: Workflow, node: str, attempt: int = 1, retryable: bool = False) -> planner.Decision:
    outcome = Outcome(result="FAILED", error="boom", retryable=retryable)
    d = planner.apply_outcome(w, run, node, attempt, outcome, 1.0)
    assert d is not None
    return d


def dispatched(d: planner.Decision) -> set[str]:
    return {x.node_id for x in d.dispatch}


def test_start_marks_trigger_done_and_dispatches_successors() -> None:
    w = wf([noop("a"), noop("b")], [("t", "a"), ("t", "b")])
    d = start(w)
    assert dispatched(d) == {"a", "b"}
    assert d.run.outputs["t"] == {"a": 1}
    assert d.run.nodes["t"].state == "SUCCEEDED"
    assert not d.run_completed


def test_fan_in_runs_once_after_all_inputs() -> None:
    w = wf([noop("a"), noop("b"), noop("j")], [("t", "a"), ("t", "b"), ("a", "j"), ("b", "j")])
    d = ok(start(w).run, w, "a")
    assert dispatched(d) == set()
    d = ok(d.run, w, "b")
    assert dispatched(d) == {"j"}
    d = ok(d.run, w, "j")
    assert d.run_completed and d.run.result == "SUCCESS"


def test_duplicate_outcome_is_ignored() -> None:
    w = wf([noop("a")], [("t", "a")])
    d = ok(start(w).run, w, "a")
    assert planner.apply_outcome(w, d.run, "a", 1, Outcome(result="SUCCESS"), 2.0) is None


def condition_workflow() -> Workflow:
    cond = {"identifier": "c", "config": {"type": "CONDITION", "options": [
        {"identifier": "prod", "expression": ".inputs.env == \"prod\""},
        {"identifier": "dev", "expression": ".inputs.env == \"dev\""}]}}
    return wf([cond, noop("p"), noop("d"), noop("f"), noop("j")], [
        ("t", "c"),
        {"sourceIdentifier": "c", "targetIdentifier": "p", "sourceOptionIdentifier": "prod"},
        {"sourceIdentifier": "c", "targetIdentifier": "d", "sourceOptionIdentifier": "dev"},
        {"sourceIdentifier": "c", "targetIdentifier": "f", "fallback": True},
        ("p", "j"), ("d", "j")])


def test_condition_takes_one_branch_and_skips_the_rest_then_fans_in() -> None:
    w = condition_workflow()
    d = ok(start(w).run, w, "c", branch="prod")
    assert dispatched(d) == {"p"}
    assert d.run.nodes["d"].state == "SKIPPED" and d.run.nodes["f"].state == "SKIPPED"
    d = ok(d.run, w, "p")
    assert dispatched(d) == {"j"}


def test_condition_fallback_skips_both_options_and_the_join() -> None:
    w = condition_workflow()
    d = ok(start(w).run, w, "c", branch=FALLBACK)
    assert dispatched(d) == {"f"}
    assert d.run.nodes["j"].state == "SKIPPED"
    d = ok(d.run, w, "f")
    assert d.run_completed and d.run.result == "SUCCESS"


def test_retryable_failure_schedules_backoff_then_redispatches() -> None:
    w = wf([noop("a", retry={"maxAttempts": 3, "initialIntervalSeconds": 2, "backoffCoefficient": 3})], [("t", "a")])
    d = fail(start(w).run, w, "a", retryable=True)
    assert d.run.nodes["a"].state == "RETRY_WAIT"
    assert [(t.node_id, t.attempt, t.due_at) for t in d.timers] == [("a", 2, 3.0)]
    r = planner.retry_due(w, d.run, "a", 2, 3.0)
    assert r is not None and [(x.node_id, x.attempt) for x in r.dispatch] == [("a", 2)]
    d = fail(r.run, w, "a", attempt=2, retryable=True)
    assert [(t.attempt, t.due_at) for t in d.timers] == [(3, 1.0 + 6.0)]
    r = planner.retry_due(w, d.run, "a", 3, 7.0)
    assert r is not None
    d = fail(r.run, w, "a", attempt=3, retryable=True)
    assert d.run_completed and d.run.result == "FAILED" and not d.timers
    assert planner.retry_due(w, d.run, "a", 3, 8.0) is None


def test_non_retryable_failure_does_not_retry() -> None:
    w = wf([noop("a", retry={"maxAttempts": 3})], [("t", "a")])
    d = fail(start(w).run, w, "a", retryable=False)
    assert d.run_completed and d.run.result == "FAILED" and not d.timers


def test_terminate_waits_for_in_flight_siblings_and_starts_nothing_new() -> None:
    w = wf([noop("a"), noop("b"), noop("after-b")], [("t", "a"), ("t", "b"), ("b", "after-b")])
    d = fail(start(w).run, w, "a")
    assert not d.run_completed and d.run.terminating
    d = ok(d.run, w, "b")
    assert dispatched(d) == set()
    assert d.run_completed and d.run.result == "FAILED"
    assert "after-b" not in d.run.nodes


def test_continue_runs_successors_and_the_run_succeeds() -> None:
    w = wf([noop("a", onFailure="continue"), noop("b")], [("t", "a"), ("a", "b")])
    d = fail(start(w).run, w, "a")
    assert dispatched(d) == {"b"}
    assert d.run.nodes["a"].state == "FAILED"
    assert d.run.outputs["a"]["error"]["message"] == "boom"
    d = ok(d.run, w, "b")
    assert d.run.result == "SUCCESS"


def test_error_branch_runs_only_on_failure() -> None:
    w = wf([noop("a"), noop("next"), noop("handler")], [
        ("t", "a"), ("a", "next"), {"sourceIdentifier": "a", "targetIdentifier": "handler", "onFailure": True}])
    failed = fail(start(w).run, w, "a")
    assert dispatched(failed) == {"handler"} and failed.run.nodes["next"].state == "SKIPPED"
    assert not failed.run.terminating
    succeeded = ok(start(w).run, w, "a")
    assert dispatched(succeeded) == {"next"} and succeeded.run.nodes["handler"].state == "SKIPPED"


def test_waiting_outcome_keeps_node_open_and_sets_timeout() -> None:
    w = wf([noop("a", timeoutSeconds=5)], [("t", "a")])
    d = planner.apply_outcome(w, start(w).run, "a", 1, Outcome(waiting=True), 1.0)
    assert d is not None and d.run.nodes["a"].state == "WAITING" and not d.run_completed
    assert [(t.node_id, t.due_at) for t in d.timeouts] == [("a", 6.0)]
    d = ok(d.run, w, "a")
    assert d.run_completed


def test_other_triggers_are_skipped() -> None:
    w = parse_workflow({"identifier": "w", "nodes": [
        {"identifier": "t", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
        {"identifier": "t2", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
        noop("a"), noop("b")],
        "connections": [{"sourceIdentifier": "t", "targetIdentifier": "a"},
                        {"sourceIdentifier": "t2", "targetIdentifier": "b"}]})
    d = start(w)
    assert dispatched(d) == {"a"} and d.run.nodes["b"].state == "SKIPPED"


def test_planner_refuses_an_illegal_node_transition() -> None:
    import pytest

    w = wf([noop("a")], [("t", "a")])
    done = ok(start(w).run, w, "a").run
    with pytest.raises(planner.IllegalTransitionError, match="SUCCEEDED to PENDING"):
        planner._move(done, "a", done.nodes["a"].model_copy(update={"state": "PENDING"}))
