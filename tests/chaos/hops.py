"""Where a chaos run's latency went: each run's critical path, from its first start request back
from its completion, cut into hops by its own records (run and node-run timestamps) and, for the
asynchronous node, by when the approver saw the request and when its PATCH was taken.

Hops (they add up to the run's latency):
- `accept`: first start request → run stored (trigger, run-commands topic, scheduler);
- `schedule`: a node run completed → the next node run on the path created (node-results topic,
  scheduler); `retry wait` when the next one is a retry of the same node (backoff and timer);
- `dispatch`: node run created → claimed by an executor (node-dispatch topic, executor; a dead
  executor's lease running out);
- `action`: claimed → completed (the request itself; for the asynchronous node until the approver
  saw its request);
- `approve`: the approver saw the request → its PATCH was taken; `complete`: PATCH taken → the
  waiting node run completed (run-commands topic, scheduler);
- `finish`: the last node run completed → the run completed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tests.chaos.figures import ended, epoch
from tests.chaos.workload import Tracked

HOPS = ("accept", "schedule", "retry wait", "dispatch", "action", "approve", "complete", "finish")


def _completed(node_runs: list[dict[str, Any]], before: float) -> dict[str, Any] | None:
    done = [nr for nr in node_runs if nr["completedAt"] and epoch(nr["completedAt"]) <= before + 1e-3]
    return max(done, key=lambda nr: epoch(nr["completedAt"]), default=None)


def _node_hops(nr: dict[str, Any], approvals: dict[str, tuple[float, float]]) -> dict[str, float]:
    created, completed = epoch(nr["createdAt"]), epoch(nr["completedAt"])
    started = epoch(nr["startedAt"]) if nr["startedAt"] else created
    hops = {"dispatch": started - created, "action": completed - started}
    if nr["identifier"] in approvals:
        seen, patched = approvals[nr["identifier"]]
        hops.update(action=seen - started, approve=patched - seen, complete=completed - patched)
    return hops


def critical_path(t: Tracked, approvals: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Seconds per hop along the run's critical path (see the module docstring)."""
    assert t.run is not None
    hops: dict[str, float] = defaultdict(float)
    node_runs, at = t.run["nodeRuns"], ended(t) or 0.0
    nr = _completed(node_runs, at)
    if nr is not None:
        hops["finish"] = at - epoch(nr["completedAt"])
    while nr is not None:
        for hop, took in _node_hops(nr, approvals).items():
            hops[hop] += took
        at = epoch(nr["createdAt"])
        before = _completed([o for o in node_runs if o is not nr], at)
        gap_to = epoch(before["completedAt"]) if before else epoch(t.run["createdAt"])
        retry = before is not None and before["node"]["identifier"] == nr["node"]["identifier"]
        hops["retry wait" if retry else "schedule"] += at - gap_to
        nr = before
    hops["accept"] = epoch(t.run["createdAt"]) - t.sent_at
    return dict(hops)


def breakdown(runs: list[Tracked], approvals: dict[str, tuple[float, float]], share: float = 0.1) -> list[str]:
    """The mean seconds per hop of the slowest `share` of the completed runs, and of all of them."""
    done = sorted((t for t in runs if ended(t) is not None), key=lambda t: t.sent_at - (ended(t) or 0))
    slow = done[:max(1, int(len(done) * share))]
    lines = ["| runs | " + " | ".join(HOPS) + " |", "|---|" + "---|" * len(HOPS)]
    for name, group in ((f"slowest {len(slow)}", slow), (f"all {len(done)}", done)):
        paths = [critical_path(t, approvals) for t in group]
        means = [sum(p.get(h, 0.0) for p in paths) / max(1, len(paths)) for h in HOPS]
        lines.append(f"| {name} | " + " | ".join(f"{m:.1f}" for m in means) + " |")
    return lines
