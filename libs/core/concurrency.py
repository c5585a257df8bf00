"""Concurrency slots of one workflow (`concurrencyLimit`): which runs hold a slot and which wait, first
in first out. Pure functions over the slot document; the scheduler stores it as an entry and changes it
with compare-and-set, so schedulers of different partitions never admit more runs than the limit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Slots:
    running: dict[str, float] = field(default_factory=dict)
    """Run id → when it got its slot."""
    queued: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Slots:
        if not data:
            return cls()
        return cls(running={str(k): float(v) for k, v in dict(data.get("running", {})).items()},
                   queued=[str(r) for r in data.get("queued", [])])

    def data(self) -> dict[str, Any]:
        return {"running": dict(self.running), "queued": list(self.queued)}

    def copy(self) -> Slots:
        return Slots(running=dict(self.running), queued=list(self.queued))


def request(slots: Slots, run_id: str, limit: int, now: float) -> tuple[Slots, list[str]]:
    """`run_id` asks for a slot: it joins the queue (unless it holds one) and the queue's head fills
    free slots. Returns the new slots and the runs admitted by this change (which may include runs
    queued earlier, whose admission was lost); a run that already holds a slot is admitted again, so
    a repeated request has the same answer."""
    new = slots.copy()
    if run_id in new.running:
        return new, [run_id, *_fill(new, limit, now)]
    if run_id not in new.queued:
        new.queued.append(run_id)
    return new, _fill(new, limit, now)


def release(slots: Slots, run_id: str, limit: int, now: float) -> tuple[Slots, list[str]]:
    """`run_id` finished (or was cancelled while queued): free its place and admit from the queue."""
    new = slots.copy()
    new.running.pop(run_id, None)
    new.queued = [r for r in new.queued if r != run_id]
    return new, _fill(new, limit, now)


def _fill(slots: Slots, limit: int, now: float) -> list[str]:
    admitted = []
    while slots.queued and len(slots.running) < limit:
        run_id = slots.queued.pop(0)
        slots.running[run_id] = now
        admitted.append(run_id)
    return admitted
