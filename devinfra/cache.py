"""The cache directory of fetched jars and built binaries: where it is, its stamps and its lock, and
the logged fetch and build steps that fill it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from devinfra.errors import InfraError
from devinfra.logs import LOG_TAIL_LINES, tail

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_cache_dir() -> Path:
    """$STEPLINE_INFRA_CACHE, else `.cache/infra` in the repository (git-ignored)."""
    env = os.environ.get("STEPLINE_INFRA_CACHE")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".cache" / "infra"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive file lock, so parallel test processes do not fetch or build at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def files_digest(files: Sequence[Path], *extra: str) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    for e in extra:
        h.update(e.encode() + b"\0")
    return h.hexdigest()


def fresh(stamp: Path, digest: str) -> bool:
    try:
        return stamp.read_text().strip() == digest
    except OSError:
        return False


def run_logged(argv: list[str], *, log: Path, cwd: Path | None = None,
               env: dict[str, str] | None = None, what: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        code = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                               cwd=cwd, env=env)
    if code != 0:
        raise InfraError(f"{what} failed (exit {code}): {' '.join(argv)}\n"
                         f"last lines of {log}:\n{tail(log, LOG_TAIL_LINES)}", retryable=True)


def rmtree(path: Path) -> None:
    """Remove a tree, including Go's read-only module cache."""
    if not path.exists():
        return

    def make_writable(func: Callable[..., object], p: str, _exc: object) -> None:
        os.chmod(os.path.dirname(p), 0o755)
        os.chmod(p, 0o755)
        func(p)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable)
    else:
        shutil.rmtree(path, onerror=make_writable)
