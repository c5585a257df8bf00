"""The development MongoDB-protocol server: FerretDB on SQLite, built by `go build` from the wrapper
module in ``deploy/dev/ferretdb/``, started on 127.0.0.1 and pinged until it answers."""

from __future__ import annotations

import os
from pathlib import Path

from stepline.devinfra.cache import files_digest, fresh, locked, rmtree, run_logged
from stepline.devinfra.errors import InfraError, MissingToolError
from stepline.devinfra.ports import LOOPBACK, tcp_answers
from stepline.devinfra.server import Server
from stepline.devinfra.tools import INSTALL_HINTS, find_tool, go_minor

FERRETDB_READY_TIMEOUT = 20.0
DEFAULT_MONGO_PORT = 27018

_FERRETDB_BINARY = "ferretdb-stepline"
_FERRETDB_BUILD_TAGS = "ferretdb_no_postgresql"


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


class FerretDBMixin:
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
            run_logged([go, "build", "-trimpath", "-tags", _FERRETDB_BUILD_TAGS, "-ldflags=-s -w",
                        "-o", str(partial), "."], cwd=src, env=env,
                       log=self.cache_dir / "ferretdb" / "build.log", what="building FerretDB with Go")
            partial.replace(self.ferretdb_binary)
            stamp.write_text(digest + "\n")
            if not self.keep_go_caches:
                rmtree(gocache)
        return self.ferretdb_binary

    def start_ferretdb(self, data_dir: Path, *, port: int,
                       timeout: float = FERRETDB_READY_TIMEOUT) -> Server:
        """Start FerretDB (SQLite files in `data_dir`) on 127.0.0.1:`port`; wait until it pings."""
        binary = self.ensure_ferretdb()
        data_dir = Path(data_dir).resolve()
        (data_dir / "sqlite").mkdir(parents=True, exist_ok=True)
        server = Server(name="ferretdb", url=f"mongodb://{LOOPBACK}:{port}/", port=port,
                        argv=[str(binary), "-listen", f"{LOOPBACK}:{port}",
                              "-sqlite-dir", str(data_dir / "sqlite")],
                        log_path=data_dir / "ferretdb.log", ready_timeout=timeout,
                        ready_check=ferretdb_ready, cwd=data_dir)
        return server.start()
