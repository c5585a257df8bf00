"""The development MongoDB-protocol server: FerretDB, built by `go build` from the wrapper module in
``deploy/dev/ferretdb/``, started on 127.0.0.1 and pinged until it answers.

Its backend is PostgreSQL when one is installed (`devinfra.postgres` starts a private
server for it), else SQLite; `STEPLINE_FERRETDB_BACKEND=sqlite|postgresql` chooses explicitly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from devinfra.cache import files_digest, fresh, locked, rmtree, run_logged
from devinfra.errors import InfraError, MissingToolError
from devinfra.ports import LOOPBACK, free_port, require_free_port, tcp_answers
from devinfra.postgres import PostgresMixin, find_postgres_bin
from devinfra.server import Server
from devinfra.tools import INSTALL_HINTS, find_tool, go_minor

FERRETDB_READY_TIMEOUT = 20.0
DEFAULT_MONGO_PORT = 27018

_FERRETDB_BINARY = "ferretdb-stepline"
_FERRETDB_BUILD_TAGS = ""  # FerretDB's defaults: the SQLite and PostgreSQL backends (part of the stamp)
Backend = Literal["sqlite", "postgresql"]


def ferretdb_backend() -> Backend:
    """$STEPLINE_FERRETDB_BACKEND, else PostgreSQL when its binaries are found, else SQLite."""
    chosen = os.environ.get("STEPLINE_FERRETDB_BACKEND", "").strip().lower()
    if chosen in ("sqlite", "postgresql"):
        return "sqlite" if chosen == "sqlite" else "postgresql"
    if chosen:
        raise InfraError(f"STEPLINE_FERRETDB_BACKEND must be sqlite or postgresql, not {chosen!r}")
    return "postgresql" if find_postgres_bin() is not None else "sqlite"


def ferretdb_ready(server: Server, offset: int | None) -> bool:
    """TCP connect, then a `ping` through PyMongo (when installed)."""
    if not tcp_answers(server.port):
        return False
    try:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError
    except ImportError:  # pragma: no cover - pymongo is a project dependency
        return True
    client: MongoClient[dict[str, object]] = MongoClient(
        server.url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000, directConnection=True)
    try:
        reply = client.admin.command("ping")
        return float(reply.get("ok", 0)) == 1.0
    except PyMongoError:
        return False
    finally:
        client.close()


class FerretDBMixin(PostgresMixin):
    """The FerretDB half of `DevInfra` (which defines the attributes declared here)."""

    cache_dir: Path
    deploy_dir: Path
    keep_go_caches: bool

    @property
    def ferretdb_binary(self) -> Path:
        return self.cache_dir / "ferretdb" / "bin" / _FERRETDB_BINARY

    def ensure_ferretdb(self) -> Path:
        """The FerretDB wrapper binary, built with `go build` when missing or out of date."""
        src = self.deploy_dir / "ferretdb"
        files = [src / "go.mod", src / "go.sum", *sorted(src.glob("*.go"))]
        for f in files:
            if not f.is_file():
                raise InfraError(f"{f} is missing (is this a Stepline source checkout?)")
        stamp = self.cache_dir / "ferretdb" / "stamp"
        with locked(self.cache_dir / ".lock"):
            digest = files_digest(files, _FERRETDB_BUILD_TAGS)
            if fresh(stamp, digest) and self.ferretdb_binary.is_file():
                return self.ferretdb_binary
            go = find_tool("go")
            if go_minor(go) < (1, 24):
                raise MissingToolError("go", "(version 1.24 or newer) to build FerretDB 1.24",
                                       INSTALL_HINTS["go"][1])
            gocache = self.cache_dir / "go"
            env = {**os.environ, "GOMODCACHE": str(gocache / "mod"), "GOCACHE": str(gocache / "build"),
                   "GOPATH": str(gocache / "path"), "GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0"}
            partial = self.ferretdb_binary.with_name(_FERRETDB_BINARY + ".partial")
            partial.parent.mkdir(parents=True, exist_ok=True)
            run_logged([go, "build", "-trimpath", f"-tags={_FERRETDB_BUILD_TAGS}", "-ldflags=-s -w",
                        "-o", str(partial), "."], cwd=src, env=env,
                       log=self.cache_dir / "ferretdb" / "build.log", what="building FerretDB with Go")
            partial.replace(self.ferretdb_binary)
            stamp.write_text(digest + "\n")
            if not self.keep_go_caches:
                rmtree(gocache)
        return self.ferretdb_binary

    def start_ferretdb(self, data_dir: Path, *, port: int, timeout: float = FERRETDB_READY_TIMEOUT,
                       backend: Backend | None = None) -> Server:
        """Start FerretDB on 127.0.0.1:`port` (data under `data_dir`; on PostgreSQL, a private server on
        another free port, stopped with it); wait until it pings."""
        binary = self.ensure_ferretdb()
        backend = backend or ferretdb_backend()
        require_free_port("ferretdb", port)  # before starting a PostgreSQL for nothing
        data_dir = Path(data_dir).resolve()
        (data_dir / "sqlite").mkdir(parents=True, exist_ok=True)
        argv = [str(binary), "-listen", f"{LOOPBACK}:{port}", "-sqlite-dir", str(data_dir / "sqlite")]
        dependencies: tuple[Server, ...] = ()
        if backend == "postgresql":
            bin_dir = find_postgres_bin()
            if bin_dir is None:
                raise InfraError("STEPLINE_FERRETDB_BACKEND=postgresql but no PostgreSQL is installed "
                                 "(initdb and postgres; set STEPLINE_POSTGRES_BIN to their directory)")
            postgres = self.start_postgres(data_dir / "postgres", port=free_port(), bin_dir=bin_dir)
            dependencies = (postgres,)
            argv += ["-postgresql-url", postgres.url]
        server = Server(name="ferretdb", url=f"mongodb://{LOOPBACK}:{port}/", port=port, argv=argv,
                        log_path=data_dir / "ferretdb.log", ready_timeout=timeout,
                        ready_check=ferretdb_ready, cwd=data_dir, dependencies=dependencies)
        try:
            return server.start()
        except BaseException:
            for dependency in dependencies:
                dependency.stop()
            raise
