"""Run events are numbered with the state change that produced them: the same change decided again
(a redelivered result after a lost race, a retried handler) produces the same envelopes, ids included."""

from __future__ import annotations

from typing import Any

from libs.contracts import Envelope
from libs.core import planner
from libs.core.run import Outcome, Run, TriggerInfo
from libs.core.validation import parse_workflow
from services.scheduler.events import stamp

DEFINITION: dict[str, Any] = {
    "identifier": "deploy",
    "nodes": [{"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
              {"identifier": "call", "config": {"type": "WEBHOOK", "url": "http://example.test/x"},
               "retry": {"maxAttempts": 2, "initialIntervalSeconds": 1.5}}],
    "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "call"}],
}
WORKFLOW = parse_workflow(DEFINITION).model_copy(update={"identifier": "ops~deploy"})
"""As the scheduler sees it: identified by its store key in workspace `ops`."""
SOURCE = "stepline/scheduler"


def started() -> tuple[Run, list[dict[str, Any]]]:
    decision = planner.start_run(WORKFLOW, run_id="wfr_1", version=3, trigger=TriggerInfo(node="trigger", by="ann"),
                                 inputs={}, now=100.0)
    events = stamp(WORKFLOW, None, decision, 100.0, source=SOURCE)
    return decision.run, [e.model_dump() for e in events]


def failed_once(run: Run) -> list[dict[str, Any]]:
    outcome = Outcome(result="FAILED", error="HTTP 503", retryable=True)
    decision = planner.apply_outcome(WORKFLOW, run, "call", 1, outcome, 100.25)
    assert decision is not None
    return [e.model_dump() for e in stamp(WORKFLOW, run, decision, 100.25, source=SOURCE)]


def test_the_same_state_change_gives_the_same_envelopes() -> None:
    (run, first), (_, again) = started(), started()
    assert first == again
    assert [e["id"] for e in first] == ["wfr_1/1", "wfr_1/2", "wfr_1/3"]
    assert failed_once(run) == failed_once(run)


def test_events_continue_the_runs_numbering_in_camel_case_with_iso_times() -> None:
    run, _ = started()
    [retrying] = failed_once(run)
    assert retrying["id"] == "wfr_1/4" and retrying["type"] == "node.retrying"
    assert retrying["time"] == "1970-01-01T00:01:40.250Z"
    assert retrying["data"] == {
        "runId": "wfr_1", "seq": 4, "at": "1970-01-01T00:01:40.250Z", "workflow": "deploy", "workspace": "ops",
        "version": 3, "nodeId": "call", "attempt": 1, "nodeRunId": retrying["data"]["nodeRunId"], "nodeType": "WEBHOOK",
        "nextAttempt": 2, "retryAt": "1970-01-01T00:01:41.750Z", "error": "HTTP 503", "durationMs": 250}


def test_a_completion_lasts_from_the_attempts_dispatch() -> None:
    run, _ = started()
    outcome = Outcome(result="SUCCESS", output={"ok": True})
    decision = planner.apply_outcome(WORKFLOW, run, "call", 1, outcome, 100.75)
    assert decision is not None
    node, end = stamp(WORKFLOW, run, decision, 100.75, source=SOURCE)
    assert (node.type, node.data["durationMs"]) == ("node.completed", 750)
    assert (end.type, end.data["durationMs"], decision.run.event_seq) == ("run.completed", 750, 5)


def test_the_outbox_keeps_what_was_not_published_then_the_new_events() -> None:
    run, _ = started()
    assert [raw["id"] for raw in run.outbox] == ["wfr_1/1", "wfr_1/2", "wfr_1/3"]
    outcome = Outcome(result="FAILED", error="HTTP 503", retryable=True)
    for sent_upto, kept in ((3, ["wfr_1/4"]), (1, ["wfr_1/2", "wfr_1/3", "wfr_1/4"])):
        decision = planner.apply_outcome(WORKFLOW, run, "call", 1, outcome, 100.25)
        assert decision is not None
        stamp(WORKFLOW, run, decision, 100.25, source=SOURCE, sent_upto=sent_upto)
        assert [raw["id"] for raw in decision.run.outbox] == kept
    assert run.outbox[0]["data"]["seq"] == 1, "the run before the change is left as it was"


def test_each_events_data_is_what_its_message_would_dump() -> None:
    """`stamp` makes the data without building the messages: every event type it writes validates,
    and dumps back to the very same data (every field, defaults included, in the model's order)."""
    run, opening = started()
    envelopes = [Envelope.model_validate(raw) for raw in opening]
    retried = planner.apply_outcome(WORKFLOW, run, "call", 1, Outcome(result="FAILED", error="HTTP 503",
                                                                   retryable=True), 100.25)
    assert retried is not None
    envelopes += stamp(WORKFLOW, run, retried, 100.25, source=SOURCE)
    done = planner.apply_outcome(WORKFLOW, run, "call", 1, Outcome(result="SUCCESS"), 100.75)
    assert done is not None
    envelopes += stamp(WORKFLOW, run, done, 100.75, source=SOURCE)
    assert {e.type for e in envelopes} == {"run.started", "node.started", "node.completed", "node.retrying",
                                           "run.completed"}
    for envelope in envelopes:
        message = envelope.message()
        assert list(message.model_dump(mode="json", by_alias=True).items()) == list(envelope.data.items())
        assert (envelope.id, envelope.time) == (message.event_id, message.at)  # type: ignore[attr-defined]


def test_the_outbox_holds_the_returned_envelopes_which_carry_their_messages() -> None:
    run, outbox = started()
    decision = planner.start_run(WORKFLOW, run_id="wfr_1", version=3, trigger=TriggerInfo(node="trigger", by="ann"),
                                 inputs={}, now=100.0)
    envelopes = stamp(WORKFLOW, None, decision, 100.0, source=SOURCE)
    assert [e.model_dump() for e in envelopes] == decision.run.outbox == outbox
    assert [e.message() for e in envelopes] == [Envelope.model_validate(raw).message() for raw in outbox]
