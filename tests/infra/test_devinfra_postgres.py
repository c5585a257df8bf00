"""FerretDB on its PostgreSQL backend: the private PostgreSQL server `devinfra` starts for it,
its life tied to FerretDB's (a FerretDB restart keeps it and the data, a stop stops it), and the
choice of backend."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pymongo")

from pymongo import MongoClient  # noqa: E402

from devinfra import DevInfra, InfraError, Server, default_cache_dir, free_port  # noqa: E402
from devinfra.ferretdb import ferretdb_backend  # noqa: E402
from devinfra.postgres import RunAs, find_postgres_bin  # noqa: E402

pytestmark = [pytest.mark.mongo, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def on_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if find_postgres_bin() is None:  # a supported setup (FerretDB then runs on SQLite), even in CI
        pytest.skip("PostgreSQL is not installed (initdb, postgres): FerretDB runs on SQLite here")
    server = DevInfra(default_cache_dir()).start_ferretdb(tmp_path_factory.mktemp("ferretdb-pg"), port=free_port(),
                                                          backend="postgresql")
    yield server
    server.stop()


def _count_and_claim(url: str) -> tuple[int, bool]:
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=5000, directConnection=True)
    try:
        runs = client["devinfra"]["runs"]
        runs.update_one({"_id": "r1"}, {"$setOnInsert": {"seq": 0}}, upsert=True)
        claimed = runs.find_one_and_update({"_id": "r1", "seq": 0}, {"$set": {"seq": 1}}) is not None
        return runs.count_documents({"seq": 1}), claimed
    finally:
        client.close()


def test_ferretdb_runs_on_its_own_postgresql(on_postgres: Server) -> None:
    [postgres] = on_postgres.dependencies
    assert postgres.name == "postgres" and postgres.running and postgres.answers()
    assert f"-postgresql-url {postgres.url}" in " ".join(on_postgres.argv)
    assert postgres.url.startswith("postgres://") and f"127.0.0.1:{postgres.port}/" in postgres.url
    assert _count_and_claim(on_postgres.url) == (1, True)


def test_a_ferretdb_restart_keeps_postgresql_and_the_data(on_postgres: Server) -> None:
    [postgres] = on_postgres.dependencies
    before = postgres.pid
    on_postgres.restart()
    assert postgres.running and postgres.pid == before
    assert _count_and_claim(on_postgres.url) == (1, False), "the document survived; seq 0 is gone"


def test_stop_stops_postgresql_too(tmp_path: Path) -> None:
    if find_postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed")
    server = DevInfra(default_cache_dir()).start_ferretdb(tmp_path, port=free_port(), backend="postgresql")
    [postgres] = server.dependencies
    server.stop()
    assert not server.running and not postgres.running
    with pytest.raises(ProcessLookupError):
        os.kill(postgres.pid, 0)


def test_the_backend_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPLINE_FERRETDB_BACKEND", "SQLite")
    assert ferretdb_backend() == "sqlite"
    monkeypatch.setenv("STEPLINE_FERRETDB_BACKEND", "postgresql")
    assert ferretdb_backend() == "postgresql"
    monkeypatch.setenv("STEPLINE_FERRETDB_BACKEND", "mysql")
    with pytest.raises(InfraError, match="sqlite or postgresql"):
        ferretdb_backend()
    monkeypatch.delenv("STEPLINE_FERRETDB_BACKEND")
    monkeypatch.setenv("STEPLINE_POSTGRES_BIN", "/nonexistent")
    monkeypatch.setenv("PATH", "/nonexistent")
    expected = "postgresql" if find_postgres_bin() is not None else "sqlite"  # /usr/lib/postgresql/* still counts
    assert ferretdb_backend() == expected


def test_a_directory_the_postgres_user_cannot_traverse_is_detected(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    other = RunAs(uid=os.geteuid() + 12345, gid=os.getegid() + 12345, prefix=("setpriv",))
    assert not other.can_reach(private / "pgdata")
    private.chmod(private.stat().st_mode | stat.S_IXOTH)
    assert other.can_reach(private / "pgdata") == all(
        p.stat().st_mode & stat.S_IXOTH for p in private.parents)
    assert RunAs(uid=os.geteuid(), gid=os.getegid()).can_reach(private / "pgdata")
