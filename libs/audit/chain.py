"""The audit log's hash chain, pure: records, canonical JSON, hashes and verification.

A record is the JSON object `{seq, id, at, actor, role, workspace, action, target, details, prevHash,
hash}`. `hash` is the SHA-256 (hex) of the canonical JSON of every other field of the record, so it
covers `prevHash`, the hash of the record before it (`GENESIS` for the first). Editing a record changes
its hash; removing, inserting or reordering records breaks a later `prevHash` or the sequence, so
`Verifier` finds the first record where the chain breaks. Canonical JSON: keys sorted, no whitespace,
UTF-8, no NaN or infinities (any JSON implementation can recompute a hash with the same rules).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

AuditAction = Literal[
    "workflow.created", "workflow.published", "workflow.deleted", "tag.moved",
    "run.started", "run.cancelled", "run.rerun", "workflow.paused", "workflow.resumed",
    "node.completed_externally", "approval.decided", "secret.written", "secret.deleted",
    "apikey.created", "apikey.revoked", "workspace.created", "auth.denied",
    "agent.written", "agent.deleted", "mcp_server.written", "mcp_server.deleted",
]
AUDIT_ACTIONS: Final[tuple[AuditAction, ...]] = get_args(AuditAction)

GENESIS: Final = "0" * 64
"""The `prevHash` of the first record."""
ID_PREFIX: Final = "aud_"
SEQ_DIGITS: Final = 12


def seq_key(seq: int) -> str:
    """The zero-padded sequence number a record is stored under (key order is chain order)."""
    return f"{seq:0{SEQ_DIGITS}d}"


def record_id(seq: int) -> str:
    return ID_PREFIX + seq_key(seq)


def iso_at(epoch: float) -> str:
    """`1700000000.5` → `"2023-11-14T22:13:20.500Z"`: fixed width, so strings compare as times."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; ValueError for NaN/infinity, TypeError for non-JSON."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def chain_hash(fields: Mapping[str, Any]) -> str:
    """The hash of a record: SHA-256 of the canonical JSON of all its fields but `hash`."""
    return hashlib.sha256(canonical_json({k: v for k, v in fields.items() if k != "hash"})).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    """One sealed record. `data()` is its stored and published JSON shape (camelCase)."""

    seq: int
    at: str
    actor: str
    role: str | None
    workspace: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def id(self) -> str:
        return record_id(self.seq)

    def data(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": self.id, "at": self.at, "actor": self.actor, "role": self.role,
                "workspace": self.workspace, "action": self.action, "target": self.target,
                "details": self.details, "prevHash": self.prev_hash, "hash": self.hash}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> AuditRecord:
        """KeyError/TypeError/ValueError when `data` is not a record's shape."""
        role = data["role"]
        return cls(seq=int(data["seq"]), at=str(data["at"]), actor=str(data["actor"]),
                   role=None if role is None else str(role), workspace=str(data["workspace"]),
                   action=str(data["action"]), target=str(data["target"]), details=dict(data["details"]),
                   prev_hash=str(data["prevHash"]), hash=str(data["hash"]))


@dataclass(frozen=True)
class Fields:
    """What the caller says about a change; `seal` adds the position in the chain."""

    actor: str
    role: str | None
    workspace: str
    action: AuditAction
    target: str
    details: dict[str, Any] = field(default_factory=dict)


def seal(fields: Fields, *, seq: int, at: str, prev_hash: str) -> AuditRecord:
    """The record at `seq` after a record whose hash is `prev_hash`, with its own hash. `details` is
    taken through JSON (tuples become lists, keys strings), so the record is exactly what is stored
    and read back; TypeError/ValueError if it is not JSON."""
    details = json.loads(canonical_json(fields.details))
    unsealed = AuditRecord(seq=seq, at=at, actor=fields.actor, role=fields.role, workspace=fields.workspace,
                           action=fields.action, target=fields.target, details=details,
                           prev_hash=prev_hash, hash="")
    return replace(unsealed, hash=chain_hash(unsealed.data()))


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain breaks: position in the records read (0-based), the record's seq and id
    (as stored, when readable), and why."""

    index: int
    seq: int | None
    id: str | None
    reason: str


class Verifier:
    """Checks records in chain order, one at a time (so a long log is verified page by page).

    `head_seq`/`head_hash`: the newest record a writer announced (the log's head entry), if known. The
    record at `head_seq` must have that hash, and the log must not end before it (records at the end
    removed), which `finish` checks."""

    def __init__(self, *, head_seq: int = 0, head_hash: str | None = None) -> None:
        self.count = 0
        self.last_hash = GENESIS
        self.last_seq = 0
        self._head_seq = head_seq
        self._head_hash = head_hash

    def check(self, data: Mapping[str, Any], *, key: str | None = None) -> ChainBreak | None:
        """The break at this record (stored under `key`, when known), or None (and the record becomes
        the last one checked)."""
        reason = self._problem(data)
        if reason is None and key is not None and key != seq_key(self.last_seq + 1):
            reason = f"stored under key {key!r} instead of {seq_key(self.last_seq + 1)!r}"
        index, self.count = self.count, self.count + 1
        if reason is not None:
            seq, raw_id = data.get("seq"), data.get("id")
            return ChainBreak(index, seq if type(seq) is int else None,
                              raw_id if isinstance(raw_id, str) else None, reason)
        self.last_hash, self.last_seq = str(data["hash"]), self.last_seq + 1
        return None

    def finish(self) -> ChainBreak | None:
        """After the last record: a break if the head names a record past it."""
        if self._head_seq <= self.last_seq:
            return None
        return ChainBreak(self.count, self._head_seq, record_id(self._head_seq),
                          f"the log ends at sequence number {self.last_seq} but {self._head_seq} was written "
                          "(records at the end were removed)")

    def _problem(self, data: Mapping[str, Any]) -> str | None:
        expected = self.last_seq + 1
        seq = data.get("seq")
        if type(seq) is not int or seq != expected:
            return f"expected sequence number {expected}, found {seq!r} (a record was removed or moved)"
        if data.get("id") != record_id(expected):
            return f"id {data.get('id')!r} does not belong to sequence number {expected}"
        try:
            computed = chain_hash(data)
        except (TypeError, ValueError):
            return "the record does not hold canonical JSON"
        if data.get("hash") != computed:
            return "hash does not match the record's contents (the record was edited)"
        if data.get("prevHash") != self.last_hash:
            return "prevHash is not the previous record's hash (a record before it was edited, removed or reordered)"
        if expected == self._head_seq and self._head_hash not in (None, computed):
            return "hash differs from the one the head recorded when it was appended (the record was rewritten)"
        return None


def verify(records: Iterable[Mapping[str, Any]]) -> ChainBreak | None:
    """The first place where `records` (in chain order, from the first) break the chain, or None."""
    verifier = Verifier()
    for data in records:
        broken = verifier.check(data)
        if broken is not None:
            return broken
    return verifier.finish()
