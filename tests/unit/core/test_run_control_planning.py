"""The pure parts of run control: cancellation and reuse in the planner, and concurrency slots."""

from __future__ import annotations

from libs.core import concurrency, planner
from libs.core.concurrency import Slots
from libs.core.planner import ReusedNode
from libs.core.run import Outcome, TriggerInfo
from tests.unit.core.test_planner import noop, ok, start, wf


def test_cancel_stops_pending_nodes_and_completes_when_nothing_is_in_flight() -> None:
    w = wf([noop("a"), noop("b"), noop("c")], [("t", "a"), ("t", "b"), ("a", "c")])
    d = start(w)
    cancelled = planner.cancel_run(w, d.run, stopped=["a"], now=2.0, by="ops")
    assert cancelled is not None
    assert cancelled.run.nodes["a"].state == "CANCELLED"
    assert cancelled.run.nodes["b"].state == "PENDING", "b's attempt is in flight and finishes"
    assert not cancelled.dispatch and not cancelled.run_completed
    assert cancelled.run.cancelled_by == "ops"
    finished = ok(cancelled.run, w, "b")
    assert finished.run_completed and finished.run.result == "CANCELLED"
    assert "c" not in finished.run.nodes or finished.run.nodes["c"].state == "SKIPPED"
    assert not finished.dispatch


def test_cancel_of_a_retry_wait_node_cancels_it() -> None:
    w = wf([noop("a", retry={"maxAttempts": 3, "initialIntervalSeconds": 10})], [("t", "a")])
    d = start(w)
    waiting = planner.apply_outcome(w, d.run, "a", 1, Outcome(result="FAILED", retryable=True), 1.0)
    assert waiting is not None and waiting.run.nodes["a"].state == "RETRY_WAIT"
    cancelled = planner.cancel_run(w, waiting.run, stopped=[], now=2.0, by=None)
    assert cancelled is not None and cancelled.run.nodes["a"].state == "CANCELLED"
    assert cancelled.run_completed and cancelled.run.result == "CANCELLED"
    assert planner.retry_due(w, cancelled.run, "a", 2, 11.0) is None


def test_cancel_of_a_completed_run_is_none() -> None:
    w = wf([noop("a")], [("t", "a")])
    done = ok(start(w).run, w, "a")
    assert done.run_completed
    assert planner.cancel_run(w, done.run, stopped=[], now=3.0, by=None) is None


def test_cancel_of_a_queued_run_completes_it_at_once() -> None:
    w = wf([noop("a")], [("t", "a")])
    queued = planner.queued_run(w, run_id="wfr_q", version=1, trigger=TriggerInfo(node="t"), inputs={}, now=0.0)
    cancelled = planner.cancel_run(w, queued, stopped=[], now=1.0, by=None)
    assert cancelled is not None and cancelled.run_completed and cancelled.run.result == "CANCELLED"
    assert not cancelled.run.queued and not cancelled.dispatch


def test_reused_nodes_succeed_at_once_and_the_rest_runs() -> None:
    w = wf([noop("a"), noop("b"), noop("c")], [("t", "a"), ("a", "b"), ("b", "c")])
    d = planner.start_run(w, run_id="wfr_r", version=1, trigger=TriggerInfo(node="t"), inputs={}, now=0.0,
                          reused={"a": ReusedNode({"n": "a"}), "ghost": ReusedNode(1)})
    assert d.run.nodes["a"].state == "SUCCEEDED" and d.run.outputs["a"] == {"n": "a"}
    assert [x.node_id for x in d.dispatch] == ["b"]
    assert "ghost" not in d.run.nodes, "a node the version does not have is ignored"


def test_slots_admit_up_to_the_limit_first_in_first_out() -> None:
    slots, admitted = concurrency.request(Slots(), "r1", 2, 0.0)
    assert admitted == ["r1"]
    slots, admitted = concurrency.request(slots, "r2", 2, 0.0)
    assert admitted == ["r2"]
    slots, admitted = concurrency.request(slots, "r3", 2, 0.0)
    slots, admitted4 = concurrency.request(slots, "r4", 2, 0.0)
    assert admitted == admitted4 == [] and slots.queued == ["r3", "r4"]
    again, repeated = concurrency.request(slots, "r1", 2, 1.0)
    assert repeated == ["r1"] and again.data() == slots.data(), "a repeated request has the same answer"
    slots, admitted = concurrency.release(slots, "r1", 2, 2.0)
    assert admitted == ["r3"] and set(slots.running) == {"r2", "r3"}
    slots, admitted = concurrency.release(slots, "r4", 2, 3.0)
    assert admitted == [] and slots.queued == [], "a queued run that is cancelled leaves the queue"
    assert Slots.of(slots.data()) == slots
