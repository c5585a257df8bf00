"""Whether a workflow is paused: an entry of kind `workflow-paused` keyed by the workflow identifier.

While paused, API and webhook starts are refused (409), catalog events and queue messages start no
run, and schedule ticks are skipped."""

from __future__ import annotations

from typing import Any

from libs.store.ports import Entry, EntryStore

KIND = "workflow-paused"


async def is_paused(store: EntryStore, workflow: str) -> bool:
    return await store.get_entry(KIND, workflow) is not None


async def pause(store: EntryStore, workflow: str, *, by: str | None, now: float) -> Entry:
    data: dict[str, Any] = {"by": by, "at": now}
    entry, _ = await store.insert_entry(KIND, workflow, data, now=now)
    return entry


async def resume(store: EntryStore, workflow: str) -> bool:
    return await store.delete_entry(KIND, workflow)
