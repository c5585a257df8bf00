"""The engine's own node-run log lines: wording, no secrets in URLs, and the bounds they keep."""

from __future__ import annotations

from libs.core import engine_logs
from libs.core.limits import Limits, json_size, logs_problem
from libs.core.run import LogEntry, NodeRun
from services.executor import attempt_log


def test_urls_lose_credentials_query_and_fragment() -> None:
    shown = engine_logs.url_without_secrets("https://user:pa55@api.example.com:8443/v1/x?token=s3cr3t#frag")
    assert shown == "https://api.example.com:8443/v1/x"
    line = engine_logs.request_sent("GET", "http://h/p?api_key=s3cr3t", 200, 0.0123, 1.0)
    assert line.log == "request GET http://h/p → HTTP 200 in 12 ms" and line.source == "engine"
    assert "s3cr3t" not in line.log


def test_levels_follow_the_outcome() -> None:
    assert engine_logs.request_sent("POST", "http://h/", 503, 0.001, 1.0).logLevel == "WARN"
    failed = engine_logs.request_sent("POST", "http://h/", None, 0.5, 1.0, failure="ConnectError")
    assert failed.log == "request POST http://h/ failed after 500 ms: ConnectError" and failed.logLevel == "WARN"
    assert engine_logs.timed_out(2, 1.0).log == "timed out after 2 s"
    retry = engine_logs.retry_scheduled(2, 3, 0.5, "POST http://h/ answered HTTP 503", 1.0)
    assert retry.log == "retry scheduled: attempt 2 of 3 in 0.5 s: POST http://h/ answered HTTP 503"
    assert engine_logs.attempt_started(1, 1, 1.0).log == "attempt 1 started"
    assert engine_logs.attempt_started(2, 3, 1.0).log == "attempt 2 of 3 started"


def test_an_attempts_start_is_shown_from_the_record_not_stored() -> None:
    user = LogEntry(logLevel="INFO", log="deploying", createdAt=7.0)
    record = NodeRun(key="wfr_1/deploy/2", id="wfnr_1", run_id="wfr_1", workflow="wf", node_id="deploy", attempt=2,
                     max_attempts=3, started_at=5.0, logs=[user])
    first, rest = engine_logs.shown(record)[0], engine_logs.shown(record)[1:]
    assert (first.log, first.createdAt, first.source, rest) == ("attempt 2 of 3 started", 5.0, "engine", [user])
    assert engine_logs.shown(record.model_copy(update={"started_at": None})) == [user], "never claimed"
    stored_before = record.model_copy(update={"max_attempts": None})  # a trigger's node run, or a stored line
    assert engine_logs.shown(stored_before) == [user]


def test_waiting_lines_say_what_the_node_waits_for() -> None:
    approval = engine_logs.waiting("APPROVAL", {"assignees": ["a@x", "b@x"], "deadline": "2030-01-01T00:00:00Z"}, 1.0)
    assert approval.log == "approval requested from a@x, b@x by 2030-01-01T00:00:00Z"
    assert engine_logs.waiting("WEBHOOK", {"response": {}}, 1.0).log.startswith("waiting for a callback")
    assert engine_logs.approval_decided("reject", "bob", 1.0).log == "rejected by bob"


def test_an_attempt_keeps_a_bounded_number_of_lines_and_counts_the_rest() -> None:
    with attempt_log.collecting() as log:
        for i in range(engine_logs.MAX_LINES_PER_ATTEMPT + 7):
            attempt_log.add(engine_logs.line(f"request {i}", float(i)))
    kept = log.entries()
    assert len(kept) == engine_logs.MAX_LINES_PER_ATTEMPT + 1
    assert kept[-1].log == "7 more engine log lines of this attempt were not kept"
    attempt_log.add(engine_logs.line("outside any attempt", 0.0))  # nothing to add to: ignored


def test_lines_are_cut_to_the_node_runs_log_quota() -> None:
    limits = Limits(max_log_entries_per_node_run=5, max_log_bytes_per_node_run=2_000)
    stored = [LogEntry(log=f"user {i}") for i in range(3)]
    added = [engine_logs.line(f"engine {i}", 1.0) for i in range(4)]
    assert [e.log for e in engine_logs.within_limits(stored, added, limits)] == ["engine 0", "engine 1"]
    big = [engine_logs.line("x" * 600, 1.0) for _ in range(4)]
    fitting = engine_logs.within_limits([], big, limits)
    assert len(fitting) == 2
    dumped = [e.model_dump(mode="json") for e in fitting]
    assert logs_problem([], dumped, limits) is None and json_size(dumped) <= 2_000
    assert logs_problem([], [e.model_dump(mode="json") for e in big[:3]], limits) is not None
