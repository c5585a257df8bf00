"""Publishing a version, the same sequence on every store: insert the next version number with an
insert-if-absent (retried when a concurrent publisher took the number), then move `$LIVE` forward to
it with a conditional update. Adapters supply the three single-statement primitives.

Every write to a workflow or its versions (publish, tag, delete) then moves the definitions stamp:
the `rev` of one entry, which readers of every live definition (the trigger workers) compare
instead of listing every workflow for each event they handle."""

from __future__ import annotations

import abc
from typing import Any

from libs.core.versioning import VersionRecord, WorkflowRecord
from libs.store.ports import Entry
from libs.store.races import LOST, Lost, until_won

STAMP_KIND, STAMP_KEY = "definitions", "stamp"


class VersionPublishing(abc.ABC):
    """Mixed into a store: `add_version` and `_publish` (used by `create_workflow`) over the
    primitives below."""

    @abc.abstractmethod
    async def get_workflow(self, identifier: str, *, include_deleted: bool = False) -> WorkflowRecord: ...

    @abc.abstractmethod
    async def get_entry(self, kind: str, key: str) -> Entry | None: ...

    @abc.abstractmethod
    async def put_entry(self, kind: str, key: str, data: dict[str, Any], *, now: float) -> Entry: ...

    @abc.abstractmethod
    async def _last_version(self, identifier: str) -> int:
        """The highest stored version number of `identifier`, 0 if none."""

    @abc.abstractmethod
    async def _insert_version(self, version: VersionRecord) -> bool:
        """Insert-if-absent on (workflow, version); False if the number is taken."""

    @abc.abstractmethod
    async def _point_live(self, identifier: str, number: int, *, title: str | None, description: str | None,
                          by: str | None, now: float) -> WorkflowRecord | None:
        """Move `$LIVE` and `latest_version` to `number` if `latest_version` is below it; the updated
        workflow, or None if a concurrent publisher already moved it further."""

    async def add_version(self, identifier: str, definition: dict[str, Any], *, now: float,
                          by: str | None = None, title: str | None = None,
                          description: str | None = None) -> tuple[WorkflowRecord, VersionRecord]:
        await self.get_workflow(identifier)
        return await self._publish(identifier, definition, now=now, by=by, title=title,
                                   description=description)

    async def _publish(self, identifier: str, definition: dict[str, Any], *, now: float,
                       by: str | None, title: str | None,
                       description: str | None) -> tuple[WorkflowRecord, VersionRecord]:
        """Insert the next version (retrying on a lost race), then move `$LIVE` forward to it."""
        async def attempt() -> VersionRecord | Lost:
            number = await self._last_version(identifier) + 1
            version = VersionRecord(workflow=identifier, version=number, definition=definition,
                                    created_at=now, created_by=by)
            return version if await self._insert_version(version) else LOST

        version = await until_won(attempt, f"the versions of workflow {identifier!r}")
        record = await self._point_live(identifier, version.version, title=title, description=description, by=by,
                                        now=now)
        await self._definitions_changed(now)
        if record is None:  # a concurrent publisher already moved it past this version
            return await self.get_workflow(identifier, include_deleted=True), version
        return record, version

    async def definitions_stamp(self) -> int:
        return 0 if (entry := await self.get_entry(STAMP_KIND, STAMP_KEY)) is None else entry.rev

    async def _definitions_changed(self, now: float) -> None:
        """Move the stamp (after the write it stands for: a reader that saw the new stamp reads the
        write too)."""
        await self.put_entry(STAMP_KIND, STAMP_KEY, {}, now=now)
