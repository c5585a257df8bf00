"""Workflow statistics folded from the run-events stream (docs/events.md), pure: what the notifier's
stream app keeps in distributed mode, so that the API computes the same metrics as embedded mode
does from the store (`libs/core/run_metrics.py` does the arithmetic for both).

The state is a tumbling window of one UTC hour of creation time per workflow: a *bucket*, keyed
`<workflow store key>@<hour>`, holding one entry per run created in that hour,
`runId → [createdMs, seq, result, durationMs]` (`result` None while the run is in progress). Only
three events change it:

- the run's first event (`seq` 1: `run.queued` or `run.started`) adds it, created at its `at`;
- `run.completed` records the result and `durationMs`; its creation time is `at - durationMs`, so a
  consumer that starts reading in the middle of a run still counts it once it completes;
- anything else (node events, the `run.started` of a run that was queued) changes nothing.

An event applies only when its `seq` is above the entry's, so a redelivered event (same id
`<runId>/<seq>`) or an older one arriving late never counts twice and never undoes a completion.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from libs.core.instants import parse_instant, to_iso
from libs.core.run_metrics import HOUR, RunFact, Window, metrics_of
from libs.core.workspaces import DEFAULT_WORKSPACE, scoped, split

Entry = list[Any]
"""`[createdMs, seq, result | None, durationMs | None]`"""
Bucket = dict[str, Entry]
STORE_KIND = "workflow-stats"
"""The store entries (key: the bucket key, data `{"runs": bucket}`) the notifier writes and the API
reads in distributed mode."""
OPENING = ("run.queued", "run.started")
COMPLETED = "run.completed"


@dataclass(frozen=True)
class Change:
    """One event as the fold sees it: the bucket it belongs in and the entry it writes."""

    key: str
    run_id: str
    entry: Entry


def workflow_key(data: Mapping[str, Any]) -> str:
    """The workflow's store key from an event's `workspace` and `workflow`."""
    return scoped(str(data.get("workspace") or DEFAULT_WORKSPACE), str(data["workflow"]))


def bucket_key(workflow: str, hour: float) -> str:
    return f"{workflow}@{to_iso(hour)}"


def split_key(key: str) -> tuple[str, float]:
    """`bucket_key`'s inverse: (workflow store key, the hour's start)."""
    workflow, _, hour = key.rpartition("@")
    return workflow, parse_instant(hour)


def window_keys(workflow: str, window: Window) -> list[str]:
    """The keys of the buckets that hold the workflow's runs created in `window`, in key order."""
    return [bucket_key(workflow, hour) for hour in window.hours()]


def hour_of(instant: float) -> float:
    return math.floor(instant / HOUR) * HOUR


def change_of(event_type: str, data: Mapping[str, Any]) -> Change | None:
    """What an event (its CloudEvents `type` and camelCase `data`) writes, or None if nothing."""
    seq, at_ms = int(data["seq"]), _ms(parse_instant(str(data["at"])))
    if event_type in OPENING and seq == 1:
        entry: Entry = [at_ms, seq, None, None]
    elif event_type == COMPLETED:
        entry = [at_ms - int(data["durationMs"]), seq, str(data["result"]), int(data["durationMs"])]
    else:
        return None
    return Change(bucket_key(workflow_key(data), hour_of(entry[0] / 1000)), str(data["runId"]), entry)


def apply(bucket: Mapping[str, Entry], changes: Iterable[Change]) -> Bucket | None:
    """The bucket with the changes applied in order (one copy, however many), or None when none
    changes it: each is a repeat, or older than what the bucket holds for its run."""
    changed: Bucket | None = None
    for change in changes:
        held = (bucket if changed is None else changed).get(change.run_id)
        if held is not None and int(held[1]) >= int(change.entry[1]):
            continue
        changed = dict(bucket) if changed is None else changed
        changed[change.run_id] = list(change.entry)
    return changed


def facts(buckets: Iterable[Mapping[str, Entry]]) -> list[RunFact]:
    return [RunFact(created / 1000, result is not None, result, duration or 0)
            for bucket in buckets for created, _, result, duration in bucket.values()]


def bucket_stats(key: str, bucket: Mapping[str, Entry]) -> dict[str, Any]:
    """The `stepline.workflow-stats.v1` data of one bucket: the metrics of its hour
    (docs/events.md, "Workflow statistics")."""
    workflow, hour = split_key(key)
    workspace, identifier = split(workflow)
    shown = metrics_of(identifier, facts([bucket]), Window(hour, hour + HOUR))
    shown.pop("runsPerHour")
    return {**shown, "workspace": workspace, "hour": to_iso(hour),
            "inProgress": sum(1 for e in bucket.values() if e[2] is None)}


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
