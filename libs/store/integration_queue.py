"""Node runs waiting for an integration worker (Port's worker API), on the entry store.

An INTEGRATION_ACTION of a provider Stepline does not run itself (an Ocean integration) waits like an
asynchronous WEBHOOK, and its node run is queued here under its `installationId` (kind
`integration-pending`, key `<installationId>/<node run key>`, insert-if-absent so a re-performed
attempt queues nothing twice). A worker claims pending node runs with a visibility timeout
(`claim-pending`): a claimed one is not handed out again until its timeout lapses, unless acknowledged
(`ack`), after which it is never redelivered. The worker completes it with the node-run PATCH; an entry
whose node run no longer waits is dropped when a claim comes across it. Every claim is a
compare-and-set on the entry, so two workers never claim one node run within its timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from libs.store.ports import Entry, EntryStore

KIND = "integration-pending"
SCAN_LIMIT = 1000
Verdict = Literal["claim", "skip", "drop"]
"""What a claim does with a pending entry: hand it out, leave it (another workspace), or delete it
(its node run no longer waits)."""


@dataclass(frozen=True)
class Claimed:
    node_run_key: str
    claimed_until: float


def entry_key(installation: str, node_run_key: str) -> str:
    return f"{installation}/{node_run_key}"


async def enqueue(store: EntryStore, installation: str, node_run_key: str, *, now: float) -> None:
    data: dict[str, Any] = {"installationId": installation, "nodeRunKey": node_run_key, "visibleAt": 0.0,
                            "acked": False, "claims": 0}
    await store.insert_entry(KIND, entry_key(installation, node_run_key), data, now=now)


async def claim(store: EntryStore, installation: str, *, limit: int, visibility: float, now: float,
                verdict: Callable[[str], Awaitable[Verdict]]) -> list[Claimed]:
    """Up to `limit` visible node runs of `installation`, claimed until `now + visibility`."""
    claimed: list[Claimed] = []
    for entry in await store.list_entries(KIND, prefix=f"{installation}/", limit=SCAN_LIMIT):
        if len(claimed) >= limit:
            break
        if entry.data.get("acked") or float(entry.data.get("visibleAt", 0.0)) > now:
            continue
        taken = await _claim_one(store, entry, now + visibility, now, await verdict(entry.data["nodeRunKey"]))
        if taken is not None:
            claimed.append(taken)
    return claimed


async def _claim_one(store: EntryStore, entry: Entry, until: float, now: float, verdict: Verdict) -> Claimed | None:
    if verdict == "drop":
        await store.delete_entry(KIND, entry.key)
        return None
    if verdict == "skip":
        return None
    data = {**entry.data, "visibleAt": until, "claims": int(entry.data.get("claims", 0)) + 1}
    if await store.replace_entry(KIND, entry.key, data, expected_rev=entry.rev, now=now) is None:
        return None  # another worker claimed it meanwhile
    return Claimed(str(entry.data["nodeRunKey"]), until)


async def ack(store: EntryStore, installation: str, node_run_key: str, *, now: float) -> bool | None:
    """Acknowledge a queued node run: True (now or before), None when it is not queued."""
    entry = await store.get_entry(KIND, entry_key(installation, node_run_key))
    while entry is not None and not entry.data.get("acked"):
        done = await store.replace_entry(KIND, entry.key, {**entry.data, "acked": True}, expected_rev=entry.rev,
                                         now=now)
        entry = done or await store.get_entry(KIND, entry_key(installation, node_run_key))
    return None if entry is None else True


async def finish(store: EntryStore, installation: str, node_run_key: str) -> None:
    """Forget a node run that no longer waits (completed by its PATCH)."""
    await store.delete_entry(KIND, entry_key(installation, node_run_key))
