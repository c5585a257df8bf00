"""`stepline audit` and `stepline audit verify`: offline against a SQLite file edited behind the log's
back, and through the API (the audit router served on loopback)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from libs.audit.log import AuditLog
from libs.store.sqlite import SqliteStore
from stepline.cli import main
from tests.conftest import free_port
from tests.unit.audit.audit_app import CALLERS, app_for

T0 = 1_700_000_000.0


async def fill(path: Path, count: int = 4) -> AuditLog:
    store = SqliteStore(str(path))
    await store.open()
    ticks = iter(range(1, 1000))
    log = AuditLog(store, clock=lambda: T0 + next(ticks))
    for i in range(count):
        await log.append(CALLERS["admin-a"] if i % 2 else CALLERS["admin-b"], "secret.written", f"secret/s{i}",
                         {"n": i})
    return log


def edit_row(path: Path, key: str, sql_json_edit: str) -> None:
    """Change one stored record in place, as someone with write access to the database file could."""
    with sqlite3.connect(path) as db:
        changed = db.execute(f"UPDATE entries SET data = {sql_json_edit} WHERE kind = 'audit' AND key = ?",
                             (key,)).rowcount
    assert changed == 1


def test_verify_offline_reports_where_an_edited_record_breaks_the_chain(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "stepline.db"
    asyncio.run(fill(path, 5))
    url = f"sqlite:///{path}"
    assert main(["audit", "verify", "--store-url", url]) == 0
    assert capsys.readouterr().out == "audit log OK: 5 records, chain intact\n"

    edit_row(path, "000000000003", "json_set(data, '$.actor', 'mallory@example.com')")
    assert main(["audit", "verify", "--store-url", url]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "audit log BROKEN at record aud_000000000003 (sequence number 3), the #3 record read:"
    assert "hash does not match the record's contents (the record was edited)" in lines[1]
    assert lines[2] == "  records 1..2 before it are intact"

    assert main(["audit", "verify", "--store-url", url, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["intact"], report["lastSeq"], report["broken"]["id"]) == (False, 2, "aud_000000000003")


def test_verify_offline_finds_a_deleted_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "stepline.db"
    asyncio.run(fill(path, 3))
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM entries WHERE kind = 'audit' AND key = '000000000002'")
    assert main(["audit", "verify", "--store-url", f"sqlite:///{path}"]) == 1
    out = capsys.readouterr().out
    assert "aud_000000000003" in out and "expected sequence number 2" in out


def test_a_store_url_of_no_known_kind_or_no_file_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--store-url", "postgres://x"]) == 2
    assert "--store-url" in capsys.readouterr().err
    missing = tmp_path / "missing.db"
    assert main(["audit", "verify", "--store-url", f"sqlite:///{missing}"]) == 2
    assert "no SQLite database" in capsys.readouterr().err
    assert not missing.exists()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """The audit router over a filled log on a loopback port: its base URL and database file."""
    path = tmp_path / "stepline.db"
    log = await fill(path)
    server = uvicorn.Server(uvicorn.Config(app_for(log), host="127.0.0.1", port=free_port(),
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)  # uvicorn offers no event to await for its start
    yield f"http://127.0.0.1:{server.config.port}", path
    server.should_exit = True
    await task


async def cli(api: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, ["--api", api, *argv])
    return code, capsys.readouterr().out


async def test_audit_lists_records_through_the_api(served: tuple[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    api, _ = served
    code, out = await cli(api, capsys, "audit", "--api-key", "owner")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["ID", "AT", "ACTOR", "ROLE", "WORKSPACE", "ACTION", "TARGET", "DETAILS"]
    assert [line.split()[0] for line in lines[1:]] == [f"aud_00000000000{i}" for i in range(1, 5)]
    assert lines[1].split()[1:8] == ["2023-11-14", "22:13:21", "bob@example.com", "admin", "team-b",
                                     "secret.written", "secret/s0"]

    code, out = await cli(api, capsys, "audit", "--api-key", "admin-a", "--json", "--target", "secret/s1")
    assert code == 0
    assert [(r["id"], r["workspace"]) for r in json.loads(out)] == [("aud_000000000002", "team-a")]


async def test_audit_verify_through_the_api(served: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    api, path = served
    assert await cli(api, capsys, "audit", "verify", "--api-key", "owner") == (
        0, "audit log OK: 4 records, chain intact\n")
    edit_row(path, "000000000004", "json_set(data, '$.details.n', 40)")
    code, out = await cli(api, capsys, "audit", "verify", "--api-key", "owner")
    assert code == 1 and "aud_000000000004" in out and "edited" in out


async def test_audit_without_a_key_is_refused(served: tuple[str, Path], capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    api, _ = served
    monkeypatch.delenv("STEPLINE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./.stepline/admin.key here
    code = await asyncio.to_thread(main, ["--api", api, "audit"])
    assert code == 2
    assert "--api-key" in capsys.readouterr().err
