"""Pure per-workflow live statistics folded from run events."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from libs.contracts import v1


@dataclass
class WorkflowStats:
    started: int = 0
    completed: Counter[str] = field(default_factory=Counter)
    node_failures: int = 0

    @property
    def in_progress(self) -> int:
        return self.started - sum(self.completed.values())


def fold(stats: dict[str, WorkflowStats], event: v1.Message) -> None:
    if isinstance(event, v1.RunStarted):
        stats.setdefault(event.workflow_key, WorkflowStats()).started += 1
    elif isinstance(event, v1.RunCompleted):
        stats.setdefault(event.workflow_key, WorkflowStats()).completed[event.result] += 1
    elif isinstance(event, v1.NodeRunCompleted) and event.result == "FAILED":
        stats.setdefault(event.workflow_key, WorkflowStats()).node_failures += 1
