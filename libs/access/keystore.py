"""API keys and workspaces on the entry store (kinds `api-key`, keyed by key id, and `workspace`).

`verify` is the per-request check: a key seen before is answered from memory, and its record is
read again at most every `recheck_seconds` so that a revocation or expiry is honoured within that
time by every replica (each reads the shared store); scrypt runs once per key and process, in a worker
thread, shared by concurrent first requests of that key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from libs.access import keys
from libs.access.principal import Principal, Role
from libs.core.workspaces import DEFAULT_WORKSPACE
from libs.store.ports import Entry, EntryStore

KEY_KIND = "api-key"
WORKSPACE_KIND = "workspace"
RECHECK_SECONDS = 0.5
MAX_CACHED = 10_000


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    name: str
    workspace: str
    role: Role
    user: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None = None

    def principal(self) -> Principal:
        return Principal(key_id=self.id, user=self.user, role=self.role, workspace=self.workspace)

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class _Verified:
    info: ApiKeyInfo
    stored_hash: str
    checked_at: float


def _info(entry: Entry) -> ApiKeyInfo:
    d = entry.data
    return ApiKeyInfo(id=entry.key, name=d["name"], workspace=d["workspace"], role=cast(Role, d["role"]),
                      user=d["user"], created_at=d["createdAt"], expires_at=d.get("expiresAt"),
                      revoked_at=d.get("revokedAt"))


class ApiKeys:
    def __init__(self, store: EntryStore, *, clock: Callable[[], float] = time.time,
                 recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._store = store
        self._clock = clock
        self._recheck = recheck_seconds
        self._verified: dict[str, _Verified] = {}
        self._outcomes: dict[tuple[str, str], bool] = {}
        """scrypt's answer per (key fingerprint, stored hash); a new hash is checked afresh."""
        self._inflight: dict[tuple[str, str], asyncio.Future[bool]] = {}

    async def create(self, *, name: str, workspace: str, role: Role, user: str,
                     expires_at: float | None = None) -> tuple[ApiKeyInfo, str]:
        """A new key: its record and the key itself (shown once, never stored)."""
        new = keys.generate()
        now = self._clock()
        data: dict[str, Any] = {"name": name, "workspace": workspace, "role": role, "user": user,
                                "createdAt": now, "expiresAt": expires_at, "hash": keys.hash_key(new.key)}
        entry, _ = await self._store.insert_entry(KEY_KIND, new.id, data, now=now)
        return _info(entry), new.key

    async def get(self, key_id: str) -> ApiKeyInfo | None:
        entry = await self._store.get_entry(KEY_KIND, key_id)
        return _info(entry) if entry is not None else None

    async def list(self, workspace: str | None = None) -> list[ApiKeyInfo]:
        """Keys that are not revoked, of one workspace or (None) of all."""
        infos = [_info(e) for e in await self._store.list_entries(KEY_KIND, limit=100_000)]
        return [i for i in infos if i.revoked_at is None and workspace in (None, i.workspace)]

    async def any_exist(self) -> bool:
        return bool(await self._store.list_entries(KEY_KIND, limit=1))

    async def revoke(self, key_id: str) -> ApiKeyInfo | None:
        """Mark the key revoked; None if there is no such (unrevoked) key."""
        while (entry := await self._store.get_entry(KEY_KIND, key_id)) is not None:
            if entry.data.get("revokedAt") is not None:
                return None
            data = {**entry.data, "revokedAt": self._clock()}
            replaced = await self._store.replace_entry(KEY_KIND, key_id, data, expected_rev=entry.rev,
                                                       now=self._clock())
            if replaced is not None:
                self._verified = {f: v for f, v in self._verified.items() if v.info.id != key_id}
                return _info(replaced)
        return None

    async def verify(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked, unexpired key; None otherwise."""
        now = self._clock()
        fingerprint = keys.fingerprint(key)
        cached = self._verified.get(fingerprint)
        if cached is not None and now - cached.checked_at < self._recheck:
            return cached.info.principal() if cached.info.usable(now) else None
        verified = await self._check(key, fingerprint, cached, now)
        return verified.info.principal() if verified is not None and verified.info.usable(now) else None

    async def _matches(self, key: str, fingerprint: str, stored_hash: str) -> bool:
        """scrypt in a worker thread (it releases the GIL), once for concurrent requests with the same
        key, and its outcome remembered: a burst of first requests costs one scrypt, not one each."""
        memo = (fingerprint, stored_hash)
        if memo in self._outcomes:
            return self._outcomes[memo]
        pending = self._inflight.get(memo)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(keys.matches, key, stored_hash))
            self._inflight[memo] = pending
            pending.add_done_callback(lambda done: self._settle(memo, done))
        return await asyncio.shield(pending)

    def _settle(self, memo: tuple[str, str], done: asyncio.Future[bool]) -> None:
        self._inflight.pop(memo, None)
        if done.cancelled() or done.exception() is not None:
            return
        if len(self._outcomes) >= MAX_CACHED:
            self._outcomes.clear()
        self._outcomes[memo] = done.result()

    async def _check(self, key: str, fingerprint: str, cached: _Verified | None, now: float) -> _Verified | None:
        key_id = keys.key_id_of(key)
        entry = await self._store.get_entry(KEY_KIND, key_id) if key_id is not None else None
        if entry is None:
            self._verified.pop(fingerprint, None)
            return None
        stored_hash = str(entry.data.get("hash", ""))
        known = cached is not None and cached.stored_hash == stored_hash
        if not known and not await self._matches(key, fingerprint, stored_hash):
            return None
        if len(self._verified) >= MAX_CACHED:
            self._verified.clear()
        verified = _Verified(info=_info(entry), stored_hash=stored_hash, checked_at=now)
        self._verified[fingerprint] = verified
        return verified


@dataclass(frozen=True)
class WorkspaceInfo:
    identifier: str
    title: str
    created_at: float
    created_by: str | None


def _workspace(entry: Entry) -> WorkspaceInfo:
    return WorkspaceInfo(identifier=entry.key, title=entry.data.get("title", entry.key),
                         created_at=entry.data.get("createdAt", entry.updated_at),
                         created_by=entry.data.get("createdBy"))


class Workspaces:
    def __init__(self, store: EntryStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def create(self, identifier: str, title: str, *, by: str | None) -> tuple[WorkspaceInfo, bool]:
        now = self._clock()
        entry, created = await self._store.insert_entry(
            WORKSPACE_KIND, identifier, {"title": title, "createdAt": now, "createdBy": by}, now=now)
        return _workspace(entry), created

    async def get(self, identifier: str) -> WorkspaceInfo | None:
        entry = await self._store.get_entry(WORKSPACE_KIND, identifier)
        return _workspace(entry) if entry is not None else None

    async def list(self) -> list[WorkspaceInfo]:
        return [_workspace(e) for e in await self._store.list_entries(WORKSPACE_KIND, limit=10_000)]

    async def ensure_default(self) -> None:
        await self.create(DEFAULT_WORKSPACE, "Default", by=None)
