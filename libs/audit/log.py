"""The audit log on the entry store: append, query, verify (the chain itself is in chain.py).

Records are entries of kind `audit` keyed by their zero-padded sequence number, so key order is chain
order. Appending is an insert-if-absent of the next number: the insert is the lock, so writers on
one store (several API replicas) keep one linear chain without transactions. A writer that loses the
race reads the winner's record from the conflict, chains onto it and tries the next number. The head
entry (`audit-head`) is only a hint of the newest record (seq and hash), moved forward by
compare-and-set after each insert; a head that lags (a crash between insert and head, a lost race)
is caught up by probing forward. `verify` also checks the head, so records removed from the end
are noticed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from libs.access.principal import Principal
from libs.audit.chain import (
    AUDIT_ACTIONS,
    GENESIS,
    SEQ_DIGITS,
    AuditAction,
    AuditRecord,
    ChainBreak,
    Fields,
    Verifier,
    iso_at,
    seal,
    seq_key,
)
from libs.core.errors import BusError
from libs.core.workspaces import DEFAULT_WORKSPACE
from libs.store.ports import Entry, EntryStore

logger = logging.getLogger("stepline.audit")

KIND: Final = "audit"
HEAD_KIND: Final = "audit-head"
HEAD_KEY: Final = "head"
ANONYMOUS: Final = "anonymous"
"""The actor of a record without a verified caller (`auth.denied` for a missing or unknown key)."""
BLOCK_DIGITS: Final = 2
"""`query` reads blocks of 10**BLOCK_DIGITS sequence numbers (one key prefix each), newest first."""
VERIFY_PAGE: Final = 1000
HEAD_ATTEMPTS: Final = 5

Publish = Callable[[AuditRecord], Awaitable[None]]
"""Called with every appended record once it is stored (distributed mode: onto `stepline.audit.v1`)."""


@dataclass(frozen=True)
class AuditQuery:
    """Filters of `AuditLog.query`; None matches everything. `workspace` None: every workspace (owners).
    `since`/`until`: epoch seconds, inclusive."""

    workspace: str | None = None
    action: str | None = None
    actor: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100


@dataclass(frozen=True)
class VerifyReport:
    """`count` records read (up to and including a broken one), `last_seq` of the intact chain."""

    count: int
    last_seq: int
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_json(self) -> dict[str, Any]:
        """`{intact, count, lastSeq, broken: {index, seq, id, reason} | null}` (API and CLI)."""
        broken = self.broken
        return {"intact": self.ok, "count": self.count, "lastSeq": self.last_seq,
                "broken": None if broken is None else {"index": broken.index, "seq": broken.seq,
                                                       "id": broken.id, "reason": broken.reason}}


def audit_action(action: str) -> AuditAction:
    """`action` as an `AuditAction`; ValueError if it is not one."""
    for known in AUDIT_ACTIONS:
        if known == action:
            return known
    raise ValueError(f"{action!r} is not an audit action (one of {', '.join(AUDIT_ACTIONS)})")


def fields_of(principal: Principal | None, action: AuditAction, target: str,
              details: Mapping[str, Any] | None = None, *, workspace: str | None = None) -> Fields:
    """The caller's identity (ANONYMOUS without one) and what it did; `workspace` overrides the
    principal's (default `default`)."""
    return Fields(actor=principal.user if principal else ANONYMOUS, role=principal.role if principal else None,
                  workspace=workspace or (principal.workspace if principal else DEFAULT_WORKSPACE),
                  action=action, target=target, details=dict(details or {}))


class AuditLog:
    """The audit log of one store. Every replica may append; `publish` (optional) gets each stored record."""

    def __init__(self, store: EntryStore, *, clock: Callable[[], float] = time.time,
                 publish: Publish | None = None) -> None:
        self._store = store
        self._clock = clock
        self._publish = publish
        self._lock = asyncio.Lock()
        self._last: tuple[int, str] | None = None
        """The tail this process appended last: where its next append starts (other replicas' records
        past it are found by the insert that conflicts)."""
        self._head: Entry | None = None
        """The head as this process last wrote it: the next move tries it first, one statement when
        no other replica moved it meanwhile."""

    async def append(self, principal: Principal | None, action: AuditAction, target: str,
                     details: Mapping[str, Any] | None = None, *, workspace: str | None = None) -> AuditRecord:
        """Record that `principal` (None: an anonymous caller) did `action` to `target`."""
        return await self.append_fields(fields_of(principal, action, target, details, workspace=workspace))

    async def record(self, caller: Principal | None, action: str, target: str, details: dict[str, Any]) -> None:
        """`append` for callers that hold the action as a string (the API's `AuditSink`); ValueError
        for an action that is not one of `AUDIT_ACTIONS`."""
        await self.append(caller, audit_action(action), target, details)

    async def append_fields(self, fields: Fields) -> AuditRecord:
        """Seal and store the next record of the chain (then move the head and publish it). Appends of
        one process take turns: concurrent appenders racing for the same sequence number would cost
        a number of inserts that grows with the square of their number."""
        async with self._lock:
            record = await self._insert_next(fields)
        await self._announce(record)
        return record

    async def _insert_next(self, fields: Fields) -> AuditRecord:
        now = self._clock()
        seq, prev_hash = self._last if self._last is not None else await self._tail()
        while True:
            record = seal(fields, seq=seq + 1, at=iso_at(now), prev_hash=prev_hash)
            entry, inserted = await self._store.insert_entry(KIND, seq_key(record.seq), record.data(), now=now)
            if inserted:
                break
            seq, prev_hash = record.seq, str(entry.data.get("hash"))
        self._last = (record.seq, record.hash)
        await self._advance_head(record, now)
        return record

    async def query(self, query: AuditQuery) -> list[AuditRecord]:
        """Matching records, newest first, at most `query.limit`."""
        last, _ = await self._tail()
        found: list[AuditRecord] = []
        block = last // 10**BLOCK_DIGITS
        while block >= 0 and len(found) < query.limit:
            records = await self._block(block)
            found.extend(r for r in records if _matches(r, query))
            if query.since is not None and records and max(r.at for r in records) < iso_at(query.since):
                break
            block -= 1
        return found[:query.limit]

    async def verify(self) -> VerifyReport:
        """Read the whole chain in order and report where it first breaks, if it does."""
        head = await self._store.get_entry(HEAD_KIND, HEAD_KEY)
        verifier = Verifier(head_seq=_head_seq(head), head_hash=_head_hash(head))
        offset = 0
        while True:
            page = await self._store.list_entries(KIND, limit=VERIFY_PAGE, offset=offset)
            for entry in page:
                broken = verifier.check(entry.data, key=entry.key)
                if broken is not None:
                    return VerifyReport(verifier.count, verifier.last_seq, broken)
            if len(page) < VERIFY_PAGE:
                return VerifyReport(verifier.count, verifier.last_seq, verifier.finish())
            offset += len(page)

    async def _tail(self) -> tuple[int, str]:
        """The newest stored record's seq and hash (0 and GENESIS for an empty log)."""
        head = await self._store.get_entry(HEAD_KIND, HEAD_KEY)
        seq, last_hash = _head_seq(head), _head_hash(head) or GENESIS
        while (entry := await self._store.get_entry(KIND, seq_key(seq + 1))) is not None:
            seq, last_hash = seq + 1, str(entry.data.get("hash"))
        return seq, last_hash

    async def _advance_head(self, record: AuditRecord, now: float) -> None:
        """Move the head to `record` unless it is already at or past it (a hint: giving up is safe)."""
        data = {"seq": record.seq, "hash": record.hash}
        head = self._head or await self._store.get_entry(HEAD_KIND, HEAD_KEY)
        for _ in range(HEAD_ATTEMPTS):
            if head is None:
                moved, inserted = await self._store.insert_entry(HEAD_KIND, HEAD_KEY, data, now=now)
                self._head = moved if inserted else None
            elif _head_seq(head) >= record.seq:
                return
            else:
                self._head = await self._store.replace_entry(HEAD_KIND, HEAD_KEY, data, expected_rev=head.rev,
                                                             now=now)
            if self._head is not None:
                return
            head = await self._store.get_entry(HEAD_KIND, HEAD_KEY)

    async def _announce(self, record: AuditRecord) -> None:
        """Publish a stored record; the store is the log of record, so a refused publish is logged."""
        if self._publish is None:
            return
        try:
            await self._publish(record)
        except BusError as exc:
            logger.warning("audit record %s stored but not published: %s", record.id, exc)

    async def _block(self, block: int) -> list[AuditRecord]:
        """The readable records whose seq is in `block`, newest first."""
        prefix = f"{block:0{SEQ_DIGITS - BLOCK_DIGITS}d}"
        entries = await self._store.list_entries(KIND, prefix=prefix, limit=10**BLOCK_DIGITS)
        return [r for r in map(_record, reversed(entries)) if r is not None]


def _record(entry: Entry) -> AuditRecord | None:
    """A stored record, or None if it is not in a record's shape (tampering; `verify` reports it)."""
    try:
        return AuditRecord.from_data(entry.data)
    except (KeyError, TypeError, ValueError):
        return None


def _matches(record: AuditRecord, query: AuditQuery) -> bool:
    wanted = ((query.workspace, record.workspace), (query.action, record.action),
              (query.actor, record.actor), (query.target, record.target))
    if any(value is not None and value != actual for value, actual in wanted):
        return False
    if query.since is not None and record.at < iso_at(query.since):
        return False
    return query.until is None or record.at <= iso_at(query.until)


def _head_seq(head: Entry | None) -> int:
    seq = head.data.get("seq") if head else None
    return seq if type(seq) is int else 0


def _head_hash(head: Entry | None) -> str | None:
    value = head.data.get("hash") if head else None
    return value if isinstance(value, str) else None
