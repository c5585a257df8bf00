"""The node-run log lines Stepline writes itself (`source: "engine"`), pure.

The executor collects one attempt's lines (each request sent, a timeout, the retry it leads to, what a
waiting node waits for) and stores them with the attempt's completion, in the same write; the
attempt's start is derived from the record when it is shown (`shown`), never stored; the scheduler
and the API add theirs (cancellation, an approval decided) to the completions they write. They are
bounded like user logs (`Limits.max_log_*_per_node_run`) and never carry a URL's credentials or query
string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from libs.core.limits import Limits, json_size
from libs.core.node_kinds import completed_by
from libs.core.run import LogEntry, LogLevel, NodeRun

MAX_LINES_PER_ATTEMPT = 100
"""An attempt that sends more requests (an inline FOREACH) keeps the first ones and a count."""


def line(text: str, at: float, level: LogLevel = "INFO") -> LogEntry:
    return LogEntry(logLevel=level, log=text, createdAt=at, source="engine")


def url_without_secrets(url: str) -> str:
    """Scheme, host, port and path: no user info, no query string, no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{parts.path}"


def attempt_started(attempt: int, max_attempts: int, at: float) -> LogEntry:
    of = f" of {max_attempts}" if max_attempts > 1 else ""
    return line(f"attempt {attempt}{of} started", at)


def shown(record: NodeRun) -> list[LogEntry]:
    """A node run's log as it is shown: for an attempt the executor performed (`max_attempts` is set)
    and claimed (`started_at`), its start first, derived from the record rather than stored (one
    write less per node run; a record stored before this shows the stored line instead)."""
    if record.max_attempts is None or record.started_at is None:
        return record.logs
    return [attempt_started(record.attempt, record.max_attempts, record.started_at), *record.logs]


def request_sent(method: str, url: str, status: int | None, seconds: float, at: float,
                 failure: str | None = None) -> LogEntry:
    """`POST http://host/path → HTTP 200 in 12 ms`, or the transport failure instead of a status."""
    took = f"{seconds * 1000:.0f} ms"
    shown = f"{method} {url_without_secrets(url)}"
    if status is None:
        return line(f"request {shown} failed after {took}: {failure or 'no response'}", at, "WARN")
    return line(f"request {shown} → HTTP {status} in {took}", at, "WARN" if status >= 400 else "INFO")


def timed_out(seconds: float, at: float, what: str = "") -> LogEntry:
    return line(f"timed out after {seconds:g} s{what}", at, "ERROR")


def retry_scheduled(next_attempt: int, max_attempts: int, delay: float, reason: str | None, at: float) -> LogEntry:
    because = f": {reason}" if reason else ""
    return line(f"retry scheduled: attempt {next_attempt} of {max_attempts} in {delay:g} s{because}", at, "WARN")


def cancelled(by: str | None, at: float) -> LogEntry:
    return line(f"cancelled by {by}" if by else "cancelled", at, "WARN")


def approval_decided(decision: str, by: str, at: float) -> LogEntry:
    verb = {"approve": "approved", "reject": "rejected"}.get(decision, decision)
    return line(f"{verb} by {by}", at)


def waiting(node_type: str, output: Any, at: float) -> LogEntry:
    """What a node that now waits waits for, from its waiting output."""
    shown = output if isinstance(output, dict) else {}
    completer = completed_by(node_type)
    if completer == "decision":
        assignees = ", ".join(str(a) for a in shown.get("assignees") or []) or "nobody"
        deadline = f" by {shown['deadline']}" if shown.get("deadline") else ""
        return line(f"approval requested from {assignees}{deadline}", at)
    if completer == "timer":
        return line(f"waiting until {shown.get('resumeAt')}", at)
    if completer == "child_runs":
        return line("waiting for child runs", at)
    if completer == "answer":
        return line("waiting for input", at)
    return line("waiting for a callback (a PATCH of this node run)", at)


def kept(lines: Sequence[LogEntry], dropped: int) -> list[LogEntry]:
    """`lines` with a last line counting the `dropped` ones, if any."""
    if not dropped:
        return list(lines)
    at = lines[-1].createdAt if lines else 0.0
    return [*lines, line(f"{dropped} more engine log lines of this attempt were not kept", at, "WARN")]


def within_limits(stored: Sequence[LogEntry], added: Sequence[LogEntry], limits: Limits) -> list[LogEntry]:
    """The first of `added` (engine lines: no tags) that fit beside the `stored` entries under the
    node-run log quota, sizes as `logs_problem` counts them. This runs per attempt, so a fresh node
    run whose lines are surely small enough takes a short cut."""
    room = limits.max_log_entries_per_node_run - len(stored)
    if not stored and len(added) <= room and _bound(added) <= limits.max_log_bytes_per_node_run:
        return list(added)
    budget = limits.max_log_bytes_per_node_run - json_size([e.model_dump(mode="json") for e in stored])
    fitting: list[LogEntry] = []
    for entry in added[: max(room, 0)]:
        budget -= json_size(entry.model_dump(mode="json")) + 1
        if budget < 0:
            break
        fitting.append(entry)
    return fitting


def _bound(lines: Sequence[LogEntry]) -> int:
    """At least the JSON size of untagged `lines`: at most six bytes a character, 160 for the rest."""
    return sum(6 * len(e.log) + 160 for e in lines)
