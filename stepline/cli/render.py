"""Plain-text rendering of API answers: tables, a run with its nodes, logs and live progress lines."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from libs.core.node_kinds import Completer, completed_by

SYMBOLS = {"SUCCEEDED": "✓", "FAILED": "✗", "CANCELLED": "✗", "WAITING": "…", "SKIPPED": "-",
           "RETRY_WAIT": "↻", "PENDING": "▸"}
SUMMARY_WIDTH = 60
RUN_COLUMNS = ("ID", "WORKFLOW", "VERSION", "STATUS", "RESULT", "CREATED")
NODE_COLUMNS = ("NODE", "TYPE", "STATE", "ATTEMPT", "NODE RUN", "OUTPUT")

Json = Mapping[str, Any]


# ---- small values -------------------------------------------------------------------------------

def text(value: Any) -> str:
    """A table cell: `-` for null/empty, the string itself, else compact JSON."""
    if value is None or value == "":
        return "-"
    return value if isinstance(value, str) else compact(value)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def summary(value: Any, width: int = SUMMARY_WIDTH) -> str:
    shown = text(value)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def short_time(value: Any) -> str:
    """`2025-01-02T03:04:05.678Z` → `2025-01-02 03:04:05` (UTC)."""
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else text(value)


def log_time(value: Any) -> str:
    moment = parse_time(value)
    return moment.strftime("%H:%M:%S.%f")[:-3] if moment else text(value)


def duration(run: Json) -> str:
    """Seconds from `createdAt` to `completedAt`, e.g. `0.42s`; empty when either is unknown."""
    start, end = parse_time(run.get("createdAt")), parse_time(run.get("completedAt"))
    if start is None or end is None:
        return ""
    return f"{max(0.0, (end - start).total_seconds()):.2f}s"


# ---- tables -------------------------------------------------------------------------------------

def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces (the last column is not padded)."""
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [columns, *rows]]
    return "\n".join(lines)


def run_row(run: Json) -> list[str]:
    return [text(run.get("identifier")), text(run.get("workflowIdentifier")),
            text(run.get("workflowVersionId")), text(run.get("status")), text(run.get("result")),
            short_time(run.get("createdAt"))]


def runs_table(runs: Sequence[Json]) -> str:
    return table(RUN_COLUMNS, [run_row(r) for r in runs])


# ---- one run ------------------------------------------------------------------------------------

def latest_node_runs(run: Json) -> dict[str, Json]:
    """Each node's node run with the highest attempt."""
    latest: dict[str, Json] = {}
    for node_run in run.get("nodeRuns") or []:
        node = str(node_run.get("nodeIdentifier"))
        if node not in latest or int(node_run.get("attempt") or 0) >= int(latest[node].get("attempt") or 0):
            latest[node] = node_run
    return latest


def node_error(run: Json, node_id: str, attempt: int | None = None) -> str | None:
    """The error of the node's attempt `attempt` (default: its latest), if it recorded one."""
    candidates = [n for n in run.get("nodeRuns") or [] if n.get("nodeIdentifier") == node_id
                  and (attempt is None or n.get("attempt") == attempt)]
    candidates.sort(key=lambda n: int(n.get("attempt") or 0))
    error = candidates[-1].get("error") if candidates else None
    return str(error) if error else None


def run_result(run: Json) -> str:
    """`COMPLETED SUCCESS`, `IN_PROGRESS`, ..."""
    return " ".join(str(p) for p in (run.get("status"), run.get("result")) if p)


def final_line(run: Json) -> str:
    """`run wfr_… COMPLETED SUCCESS in 0.42s`, plus the run's error when it has one."""
    took = duration(run)
    line = f"run {run.get('identifier')} {run_result(run)}" + (f" in {took}" if took else "")
    return line + (f": {run['error']}" if run.get("error") else "")


def node_rows(run: Json) -> list[list[str]]:
    latest = latest_node_runs(run)
    outputs = (run.get("variables") or {}).get("outputs") or {}
    rows = []
    nodes: Mapping[str, Json] = run.get("nodes") or {}
    for node_id in [*nodes, *(n for n in latest if n not in nodes)]:
        progress = nodes.get(node_id) or {}
        node_run = latest.get(node_id) or {}
        state = str(progress.get("state") or node_run.get("state") or "-")
        rows.append([node_id, text(node_run.get("nodeConfigType")), state,
                     text(progress.get("attempt") or node_run.get("attempt")), text(node_run.get("identifier")),
                     node_summary(run, node_id, state, outputs, node_run)])
    return rows


def node_summary(run: Json, node_id: str, state: str, outputs: Json, node_run: Json) -> str:
    """The error of a failed node, else its output (from the run's variables, else its node run)."""
    error = node_error(run, node_id) if state == "FAILED" else None
    if error:
        return summary(f"error: {error}")
    return summary(outputs[node_id] if node_id in outputs else node_run.get("output") or None)


def run_detail(run: Json) -> str:
    trigger = run.get("trigger") or {}
    took = duration(run)
    header = [
        ("run", text(run.get("identifier"))),
        ("workflow", f"{run.get('workflowIdentifier')} version {run.get('workflowVersionId')}"),
        ("status", run_result(run) + (f" in {took}" if took else "")),
        ("trigger", f"{text(trigger.get('type'))} by {text(trigger.get('by'))} (node {text(trigger.get('node'))})"),
        ("created", short_time(run.get("createdAt"))),
        ("completed", short_time(run.get("completedAt"))),
        ("inputs", text(run.get("inputs"))),
    ]
    if run.get("error"):
        header.append(("error", str(run["error"])))
    width = max(len(k) for k, _ in header)
    lines = [f"{k.ljust(width)}  {v}" for k, v in header]
    return "\n".join([*lines, "", table(NODE_COLUMNS, node_rows(run)), *waiting_hints(run)])


WAITING_HINTS: Mapping[Completer, str] = {
    "decision": "decide it with POST /v1/workflows/runs/{run}/nodes/{node}/approval "
                '{{"decision": "approve"}} (or "reject"), as an assignee',
    "answer": "answer it with POST /v1/workflows/runs/{run}/nodes/{node}/input "
              '{{"button": "...", "inputs": {{...}}}}, as a responder',
    "timer": "it goes on by itself when its delay ends",
    "child_runs": "it goes on by itself when its child runs end",
}
"""How a node the engine completes after a wait is moved on, by who completes it
(`libs/core/node_kinds.py: NodeKind.completed_by`; never a node-run PATCH); any other waits for the PATCH."""
PATCH_HINT = "complete it with PATCH /v1/workflows/nodes/runs/{node_run}"


def waiting_hints(run: Json) -> list[str]:
    """How to move on each node that waits: its decision or answer route, nothing (timers, child
    runs), or the node-run PATCH."""
    latest = latest_node_runs(run)
    hints = []
    for node_id, progress in (run.get("nodes") or {}).items():
        node_run = latest.get(node_id) or {}
        if progress.get("state") == "WAITING" and node_run.get("identifier"):
            completer = completed_by(str(node_run.get("nodeConfigType")))
            hint = PATCH_HINT if completer is None else WAITING_HINTS[completer]
            where = hint.format(run=run.get("identifier"), node=node_id, node_run=node_run["identifier"])
            hints.append(f"{node_id} is WAITING: {where}")
    return ["", *hints] if hints else []


# ---- logs ---------------------------------------------------------------------------------------

def log_lines(run: Json) -> list[str]:
    """`time level node: message` for every log of every node run, oldest first; the engine's own
    lines (attempts, requests, retries, waits) read `node (engine): message`."""
    entries = []
    for node_run in run.get("nodeRuns") or []:
        node = str(node_run.get("nodeIdentifier"))
        attempt = int(node_run.get("attempt") or 1)
        label = node if attempt == 1 else f"{node}[{attempt}]"
        for entry in node_run.get("nodeRunLogs") or []:
            entries.append((str(entry.get("createdAt") or ""), label, entry))
    entries.sort(key=lambda e: _timestamp(e[0]))
    return [f"{log_time(at)} {str(e.get('logLevel') or 'INFO'):<5} {label}{_by(e)}: {e.get('log', '')}"
            for at, label, e in entries]


def _by(entry: Json) -> str:
    return " (engine)" if entry.get("source") == "engine" else ""


def _timestamp(value: str) -> float:
    moment = parse_time(value)
    return moment.timestamp() if moment else 0.0


# ---- live progress ------------------------------------------------------------------------------

class Progress:
    """Remembers each node's (state, attempt) and turns a fresh run into one line per change."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, int]] = {}

    def changes(self, run: Json) -> list[str]:
        lines = []
        for node_id, progress in (run.get("nodes") or {}).items():
            state, attempt = str(progress.get("state")), int(progress.get("attempt") or 1)
            if self.seen.get(node_id) == (state, attempt):
                continue
            self.seen[node_id] = (state, attempt)
            lines.append(progress_line(run, node_id, state, attempt))
        return lines


def progress_line(run: Json, node_id: str, state: str, attempt: int) -> str:
    """`  ✓ check-env SUCCEEDED`, `  ✗ deploy FAILED: <error>`, `  ↻ deploy RETRY_WAIT: attempt 1 failed: …`."""
    line = f"  {SYMBOLS.get(state, '•')} {node_id} {state}"
    if attempt > 1 and state != "RETRY_WAIT":
        line += f" (attempt {attempt})"
    if state in ("FAILED", "CANCELLED"):
        error = node_error(run, node_id, attempt)
        line += f": {error}" if error else ""
    elif state == "WAITING":
        node_run = latest_node_runs(run).get(node_id) or {}
        line += f" (node run {node_run['identifier']})" if node_run.get("identifier") else ""
    elif state == "RETRY_WAIT":
        error = node_error(run, node_id, attempt)
        line += f": attempt {attempt} failed" + (f": {error}" if error else "")
    return line
