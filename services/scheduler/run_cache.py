"""The scheduler's cache of runs it wrote last.

The scheduler is the single writer of run state, so the copy it saved is usually current. A stale
copy is harmless: the seq-guarded update fails and the caller reloads. A stale copy can also miss a
node dispatched by another replica, so an outcome that looks stale against a cached run is checked
again against the store before it is dropped.

It also remembers, per run, the highest run-event `seq` this process published, so events already
relayed are neither published again nor carried into the next outbox (handlers.relay, events.stamp),
and keeps the envelopes of events it wrote and has not relayed yet, so relaying them costs no decoding.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from libs.contracts import Envelope
from libs.core.run import Run
from libs.store.ports import RunStore


class RunCache:
    def __init__(self, store: RunStore, *, size: int = 10_000) -> None:
        self._store = store
        self._size = size
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._sent: OrderedDict[str, int] = OrderedDict()
        self._written: OrderedDict[str, Envelope] = OrderedDict()

    async def get(self, run_id: str, *, fresh: bool = False) -> tuple[Run, bool]:
        """The run, and whether it came from the cache (False: just read from the store)."""
        if not fresh:
            hit = self._runs.get(run_id)
            if hit is not None:
                return hit, True
        run = await self._store.get_run(run_id)
        self.put(run)
        return run, False

    def put(self, run: Run) -> None:
        if run.status == "COMPLETED":
            self._runs.pop(run.id, None)
            return
        self._runs[run.id] = run
        self._runs.move_to_end(run.id)
        if len(self._runs) > self._size:
            self._runs.popitem(last=False)

    def sent_upto(self, run_id: str) -> int:
        """The highest run-event `seq` of the run this process has published (0: none known)."""
        return self._sent.get(run_id, 0)

    def mark_sent(self, run_id: str, seq: int) -> None:
        self._sent[run_id] = max(seq, self._sent.get(run_id, 0))
        self._sent.move_to_end(run_id)
        if len(self._sent) > self._size:
            self._sent.popitem(last=False)

    def written(self, envelopes: list[Envelope]) -> None:
        """Envelopes of events a write of this process stored in an outbox (stamped, then written)."""
        for envelope in envelopes:
            self._written[envelope.id] = envelope
        while len(self._written) > self._size:
            self._written.popitem(last=False)

    def envelope(self, raw: dict[str, Any]) -> Envelope:
        """The envelope of an outbox entry: the one this process wrote, or decoded from the entry."""
        kept = self._written.pop(str(raw.get("id")), None)
        return kept if kept is not None else Envelope.model_validate(raw)

    def forget(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
