"""`GET /v1/audit` and `/v1/audit/verify` on a small app whose caller the bearer token names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.audit.log import KIND, AuditLog
from libs.store.sqlite import SqliteStore
from tests.unit.audit.audit_app import CALLERS, app_for

T0 = 1_700_000_000.0


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, AuditLog, httpx.AsyncClient]]:
    store = SqliteStore(str(tmp_path / "stepline.db"))
    await store.open()
    ticks = iter(range(1, 1000))
    log = AuditLog(store, clock=lambda: T0 + next(ticks))
    await log.append(CALLERS["admin-a"], "secret.written", "secret/a", {"created": True})
    await log.append(CALLERS["admin-b"], "workflow.created", "workflow/b")
    await log.append(CALLERS["admin-a"], "run.started", "run/r1")
    await log.append(None, "auth.denied", "GET /v1/secrets", {"reason": "unknown key"}, workspace="team-b")
    transport = httpx.ASGITransport(app=app_for(log))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield store, log, client
    await store.close()


async def get(client: httpx.AsyncClient, who: str, path: str, **params: Any) -> httpx.Response:
    return await client.get(path, params=params, headers={"Authorization": f"Bearer {who}"})


async def test_an_owner_reads_every_workspace_newest_first(setup: Any) -> None:
    _, _, client = setup
    answer = await get(client, "owner", "/v1/audit")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True
    assert [r["target"] for r in body["records"]] == ["GET /v1/secrets", "run/r1", "workflow/b", "secret/a"]
    first = body["records"][-1]
    assert set(first) == {"seq", "id", "at", "actor", "role", "workspace", "action", "target", "details",
                          "prevHash", "hash"}
    assert (first["id"], first["at"], first["actor"], first["role"], first["details"]) == (
        "aud_000000000001", "2023-11-14T22:13:21.000Z", "ada@example.com", "admin", {"created": True})
    narrowed = await get(client, "owner", "/v1/audit", workspace="team-b")
    assert [r["seq"] for r in narrowed.json()["records"]] == [4, 2]


async def test_an_admin_reads_only_their_workspace(setup: Any) -> None:
    _, _, client = setup
    mine = await get(client, "admin-a", "/v1/audit")
    assert [r["target"] for r in mine.json()["records"]] == ["run/r1", "secret/a"]
    asked_for_other = await get(client, "admin-a", "/v1/audit", workspace="team-b")
    assert [r["workspace"] for r in asked_for_other.json()["records"]] == ["team-a", "team-a"]
    other = await get(client, "admin-b", "/v1/audit")
    assert [r["actor"] for r in other.json()["records"]] == ["anonymous", "bob@example.com"]


async def test_filters(setup: Any) -> None:
    _, _, client = setup

    async def seqs(**params: Any) -> list[int]:
        answer = await get(client, "owner", "/v1/audit", **params)
        assert answer.status_code == 200, answer.text
        return [r["seq"] for r in answer.json()["records"]]

    assert await seqs(action="run.started") == [3]
    assert await seqs(actor="ada@example.com") == [3, 1]
    assert await seqs(target="workflow/b") == [2]
    assert await seqs(since="2023-11-14T22:13:22Z", until="2023-11-14T22:13:23.000Z") == [3, 2]
    assert await seqs(since="2023-11-14T22:13:23") == [4, 3]  # no zone: UTC
    assert await seqs(limit=1) == [4]


@pytest.mark.parametrize("params", [{"action": "secret.read"}, {"limit": 0}, {"limit": 1001},
                                    {"since": "yesterday"}])
async def test_bad_parameters_answer_422(setup: Any, params: dict[str, Any]) -> None:
    _, _, client = setup
    answer = await get(client, "owner", "/v1/audit", **params)
    assert answer.status_code == 422
    assert answer.json()["ok"] is False


async def test_without_a_caller_the_routes_answer_401(setup: Any) -> None:
    _, _, client = setup
    for path in ("/v1/audit", "/v1/audit/verify"):
        answer = await client.get(path)
        assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"


async def test_verify_reports_intact_then_where_an_edit_broke_the_chain(setup: Any) -> None:
    store, _, client = setup
    intact = await get(client, "owner", "/v1/audit/verify")
    assert intact.json() == {"ok": True, "intact": True, "count": 4, "lastSeq": 4, "broken": None}
    entry = await store.get_entry(KIND, "000000000002")
    await store.put_entry(KIND, entry.key, {**entry.data, "target": "workflow/c"}, now=T0)
    broken = (await get(client, "owner", "/v1/audit/verify")).json()
    assert (broken["intact"], broken["lastSeq"]) == (False, 1)
    assert (broken["broken"]["seq"], broken["broken"]["id"]) == (2, "aud_000000000002")
    assert "edited" in broken["broken"]["reason"]
