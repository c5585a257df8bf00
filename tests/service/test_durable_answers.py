"""No API answer leaves before the writes it reports are committed.

The embedded engine's SQLite store gives its writes a commit window (libs/store/sqlite/commit_window.py);
here the window is a minute, so nothing commits but a flush. A second connection to the database file
sees what a restarted engine would see after a crash: each answer's run must be there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from libs.core.errors import StoreUnavailableError
from libs.store.sqlite import SqliteStore
from services.trigger.durable_answers import DurableAnswersMiddleware
from tests.auth_helpers import engine_client

MINUTE_MS = 60_000
WORKFLOW = {"identifier": "pair", "nodes": [
    {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {"n": {"type": "integer"}}}}},
    {"identifier": "double", "config": {"type": "TRANSFORM", "expression": "{n: (.inputs.n * 2)}"}}],
    "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "double"}]}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Any]:
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    settings = EmbeddedSettings(data_dir=tmp_path / "data", sqlite_commit_window_ms=MINUTE_MS, partitions=2)
    eng = Engine(settings)
    await eng.start()
    yield eng
    await eng.stop()


def committed_run(path: str, run_id: str) -> tuple[str, str | None] | None:
    """The run's status and result as another connection to the file reads them (None: absent)."""
    with closing(sqlite3.connect(path)) as raw:
        row = raw.execute("SELECT status, result FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else (row[0], row[1])


async def test_each_answer_is_committed_before_it_leaves(engine: Any) -> None:
    path = engine.settings.sqlite_path()
    async with engine_client(engine) as api:
        assert (await api.post("/v1/workflows", json=WORKFLOW)).status_code == 201
        started = await api.post("/v1/workflows/pair/runs", json={"inputs": {"n": 4}})
        assert started.status_code == 201, started.text
        run_id = started.json()["workflowRun"]["identifier"]
        assert committed_run(path, run_id) is not None, "the accepted run is in the file"
        done = await api.get(f"/v1/workflows/runs/{run_id}", params={"wait": 10})
    run = done.json()["workflowRun"]
    assert (run["status"], run["result"]) == ("COMPLETED", "SUCCESS")
    assert run["variables"]["outputs"]["double"] == {"n": 8}
    assert committed_run(path, run_id) == ("COMPLETED", "SUCCESS"), "the reported completion is in the file"


async def test_the_window_holds_writes_that_no_answer_reported(tmp_path: Path) -> None:
    """The counterpart: without a flush, another connection does not see the window's writes."""
    from tests.contract.store_contract import run

    path = str(tmp_path / "stepline.db")
    async with SqliteStore(path, commit_window=MINUTE_MS / 1000) as store:
        await store.insert_run(run(1))
        assert (await store.get_run(run(1).id)).id == run(1).id, "the store's own connection sees it at once"
        assert committed_run(path, run(1).id) is None
        await store.flush()
        assert committed_run(path, run(1).id) == (run(1).status, None)


class FailingFlush(SqliteStore):
    async def flush(self) -> None:
        raise StoreUnavailableError("SQLite store unavailable: disk I/O error")


async def test_an_answer_whose_writes_cannot_be_committed_becomes_503(tmp_path: Path) -> None:
    async def created(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    app = DurableAnswersMiddleware(created, store=FailingFlush(str(tmp_path / "stepline.db")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        answer = await client.post("/v1/workflows/pair/runs")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["error"] == "store_unavailable" and "disk" not in answer.text
