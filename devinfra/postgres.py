"""The development PostgreSQL server that FerretDB uses as its backend when PostgreSQL is installed.

FerretDB's SQLite backend pushes no filter into SQL except a lone `_id`: every conditional update
(`{_id, seq}`, `{_id, status, lease_owner}`) and every `run_id` lookup reads and decodes the whole
collection, so the store slows down as runs accumulate. Its PostgreSQL backend pushes equality filters
down. A throw-away cluster is created with `initdb` (trust authentication, no fsync: development data
only) and served on 127.0.0.1 only (no Unix socket). As root, PostgreSQL refuses to run, so it runs as
the `postgres` user (else `nobody`) through `setpriv`, from a data directory that user can reach.
"""

from __future__ import annotations

import functools
import glob
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devinfra.cache import rmtree, run_logged
from devinfra.errors import InfraError
from devinfra.ports import LOOPBACK, tcp_answers
from devinfra.server import Server

POSTGRES_READY_TIMEOUT = 30.0
POSTGRES_USER = "stepline"
POSTGRES_DATABASE = "postgres"

_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin",
           "/opt/homebrew/opt/postgresql@*/bin")
_RUN_AS = ("postgres", "nobody")
_SETTINGS = {
    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",  # development data only
    "max_connections": "100", "shared_buffers": "64MB", "unix_socket_directories": "",
    "log_min_messages": "fatal", "log_line_prefix": "%m [%p] ",
}


def find_postgres_bin() -> Path | None:
    """The directory of `initdb` and `postgres`: $STEPLINE_POSTGRES_BIN, else `initdb` on PATH, else
    the newest /usr/lib/postgresql/<version>/bin (Debian keeps them off PATH); None if absent."""
    candidates: list[Path] = []
    if env := os.environ.get("STEPLINE_POSTGRES_BIN"):
        candidates.append(Path(env))
    if on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).resolve().parent)
    for pattern in _SEARCH:
        candidates.extend(sorted((Path(p) for p in glob.glob(pattern)), key=_version_key, reverse=True))
    for directory in candidates:
        if all(os.access(directory / tool, os.X_OK) for tool in ("initdb", "postgres")):
            return directory
    return None


def _version_key(path: Path) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in str(path)).split()
    return tuple(int(d) for d in digits)


@dataclass(frozen=True)
class RunAs:
    """Who the server runs as: the current user (no `prefix`), or, for root, the user that the
    `setpriv` command in `prefix` switches to."""

    uid: int
    gid: int
    prefix: tuple[str, ...] = ()

    @classmethod
    def for_postgres(cls) -> RunAs:
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid())
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise InfraError("PostgreSQL refuses to run as root and `setpriv` is missing to switch user")
        for name in _RUN_AS:
            try:
                user = pwd.getpwnam(name)
            except KeyError:
                continue
            return cls(user.pw_uid, user.pw_gid, (setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                                                  "--init-groups" if name != "nobody" else "--clear-groups"))
        raise InfraError("PostgreSQL refuses to run as root and there is no `postgres` or `nobody` user")

    def can_reach(self, path: Path) -> bool:
        """Whether this user may traverse every directory above `path`."""
        if not self.prefix:
            return True
        for parent in path.parents:
            st = parent.stat()
            bit = (stat.S_IXUSR if st.st_uid == self.uid else stat.S_IXGRP if st.st_gid == self.gid
                   else stat.S_IXOTH)
            if not st.st_mode & bit:
                return False
        return True


def postgres_ready(bin_dir: Path, server: Server, _offset: int | None) -> bool:
    """`pg_isready` says the server accepts connections (the log holds only FATAL and worse, so there
    is no ready line to wait for); a TCP connect when `pg_isready` is missing."""
    if not tcp_answers(server.port):
        return False
    pg_isready = bin_dir / "pg_isready"
    if not os.access(pg_isready, os.X_OK):
        return True
    probe = subprocess.run([str(pg_isready), "-q", "-h", LOOPBACK, "-p", str(server.port), "-t", "2"],
                           stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return probe.returncode == 0


class PostgresMixin:
    """The PostgreSQL part of `DevInfra`."""

    def start_postgres(self, data_dir: Path, *, port: int, bin_dir: Path,
                       timeout: float = POSTGRES_READY_TIMEOUT) -> Server:
        """A fresh cluster (`initdb`) under `data_dir`, served on 127.0.0.1:`port`. When the user it runs
        as cannot reach `data_dir`, the cluster lives in a temporary directory, removed after stop."""
        run_as = RunAs.for_postgres()
        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        home, temporary = data_dir, False
        if not run_as.can_reach(data_dir / "x"):
            home, temporary = Path(tempfile.mkdtemp(prefix="stepline-postgres-")), True
        cluster = home / "pgdata"
        try:
            if run_as.prefix:
                os.chown(home, run_as.uid, run_as.gid)
            if not (cluster / "PG_VERSION").is_file():
                rmtree(cluster)
                run_logged([*run_as.prefix, str(bin_dir / "initdb"), "-D", str(cluster), "-U", POSTGRES_USER,
                            "-A", "trust", "-E", "UTF8", "--no-sync"],
                           log=data_dir / "initdb.log", what="creating a PostgreSQL cluster with initdb")
            settings = [arg for name, value in _SETTINGS.items() for arg in ("-c", f"{name}={value}")]
            server = Server(name="postgres", url=f"postgres://{POSTGRES_USER}@{LOOPBACK}:{port}/{POSTGRES_DATABASE}",
                            port=port, log_path=data_dir / "postgres.log", ready_timeout=timeout,
                            argv=[*run_as.prefix, str(bin_dir / "postgres"), "-D", str(cluster),
                                  "-h", LOOPBACK, "-p", str(port), *settings],
                            ready_check=functools.partial(postgres_ready, bin_dir), cwd=home,
                            cleanup=(lambda: rmtree(home)) if temporary else None)
            return server.start()
        except BaseException:
            if temporary:
                rmtree(home)
            raise
