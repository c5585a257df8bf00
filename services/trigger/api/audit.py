"""The audit log (libs/audit): read it, and verify its hash chain.

Owners read every workspace's records (or one, with `workspace=`); everyone else only their own.
`verify` checks the one chain all workspaces share.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from libs.access.principal import Principal
from libs.audit.chain import AuditAction
from libs.audit.log import AuditLog, AuditQuery
from services.trigger.api.context import Caller, Context

router = APIRouter(prefix="/v1/audit", tags=["audit"])

Text = Annotated[str | None, Query(min_length=1, max_length=500)]
Time = Annotated[datetime | None, Query(description="ISO 8601; without a zone it is UTC")]


async def reader(ctx: Context) -> AuditLog:
    """An audit log over the API's store, for reading (records are appended where changes happen)."""
    return AuditLog(ctx.store, clock=ctx.clock)


Reader = Annotated[AuditLog, Depends(reader)]


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def scope(caller: Principal, workspace: str | None) -> str | None:
    """The workspace a caller may read: an owner any (None: all), anyone else only their own."""
    return workspace if caller.role == "owner" else caller.workspace


@router.get("")
async def list_audit(log: Reader, caller: Caller, action: Annotated[AuditAction | None, Query()] = None,
                     actor: Text = None, target: Text = None, since: Time = None, until: Time = None,
                     workspace: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Records newest first; `since`/`until` inclusive; `workspace` only narrows an owner's view."""
    query = AuditQuery(workspace=scope(caller, workspace), action=action, actor=actor, target=target,
                       since=_epoch(since), until=_epoch(until), limit=limit)
    return {"ok": True, "records": [record.data() for record in await log.query(query)]}


@router.get("/verify")
async def verify_audit(log: Reader, caller: Caller) -> dict[str, Any]:
    """Walk the whole chain: `{intact, count, lastSeq, broken}`; 200 either way."""
    return {"ok": True, **(await log.verify()).as_json()}
