"""Pid files: how `up` leaves a record of each server it started for later `down` and `status` runs."""

from __future__ import annotations

import json
from pathlib import Path

from devinfra.ferretdb import ferretdb_ready
from devinfra.kafka import kafka_ready
from devinfra.model import model_ready
from devinfra.ports import tcp_answers
from devinfra.server import Server

NAMES = ("kafka", "ferretdb", "postgres")
"""Every server `up` may leave a record of (PostgreSQL only when FerretDB runs on it)."""


def record_path(base: Path, name: str) -> Path:
    return base / f"{name}.pid"


def write_record(base: Path, server: Server) -> None:
    """A record of `server` and of each server it depends on."""
    for dependency in server.dependencies:
        write_record(base, dependency)
    record_path(base, server.name).write_text(json.dumps(server.to_record(), indent=1) + "\n")


def _answers(server: Server, _offset: int | None) -> bool:
    return tcp_answers(server.port)


def load_server(base: Path, name: str) -> Server | None:
    """A handle on a server started by an earlier `up`, from its pid file."""
    path = record_path(base, name)
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    check = {"kafka": kafka_ready, "ferretdb": ferretdb_ready, "model": model_ready}.get(name, _answers)
    ticks = rec.get("start_ticks")
    return Server(name=name, url=str(rec["url"]), port=int(rec["port"]), argv=[],
                  log_path=Path(rec["log"]), ready_timeout=0, ready_check=check,
                  pid=int(rec["pid"]), start_ticks=int(ticks) if ticks is not None else None)
