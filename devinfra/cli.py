"""The command line (``make infra-fetch`` / ``infra-up`` / ``infra-down``)::

    python -m devinfra fetch|up|down|status [--dir .stepline/infra]
                                [--kafka-port 19092] [--mongo-port 27018]

and for the local language model (``make model``; see `devinfra.model`)::

    python -m devinfra model up|down|fetch|status|provider [--dir .stepline/infra]
                                [--model-port 18080]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from devinfra.cache import default_cache_dir, rmtree
from devinfra.errors import InfraError
from devinfra.ferretdb import DEFAULT_MONGO_PORT
from devinfra.infra import DevInfra
from devinfra.kafka import DEFAULT_KAFKA_PORT
from devinfra.model import DEFAULT_MODEL_PORT
from devinfra.model_cli import ACTIONS as MODEL_ACTIONS
from devinfra.model_cli import model_command
from devinfra.records import NAMES, load_server, record_path, write_record
from devinfra.server import Server


def _cmd_fetch(infra: DevInfra, _args: argparse.Namespace) -> int:
    for name, ensure in (("kafka", infra.ensure_kafka), ("ferretdb", infra.ensure_ferretdb)):
        began = time.monotonic()
        path = ensure()
        print(f"{name:9} {path}  ({time.monotonic() - began:.1f} s)")
    return 0


def _cmd_up(infra: DevInfra, args: argparse.Namespace) -> int:
    base: Path = args.dir
    base.mkdir(parents=True, exist_ok=True)
    started: list[Server] = []
    try:
        for name in ("kafka", "ferretdb"):
            existing = load_server(base, name)
            if existing is not None and existing.running:
                print(f"{name:9} already running: {existing.url} (pid {existing.pid})")
                continue
            if name == "kafka":
                server = infra.start_kafka(base / "kafka", port=args.kafka_port,
                                           controller_port=args.kafka_controller_port or args.kafka_port + 1)
            else:
                server = infra.start_ferretdb(base / "ferretdb", port=args.mongo_port)
            started.append(server)
            write_record(base, server)
            for dependency in server.dependencies:
                print(f"{dependency.name:9} {dependency.url}  (pid {dependency.pid}, for {name}, "
                      f"log {dependency.log_path})")
            print(f"{name:9} {server.url}  (pid {server.pid}, ready in {server.started_in:.1f} s, "
                  f"log {server.log_path})")
    except BaseException:
        for server in started:
            server.stop()
            for stopped in (server, *server.dependencies):
                record_path(base, stopped.name).unlink(missing_ok=True)
        raise
    kafka, mongo = load_server(base, "kafka"), load_server(base, "ferretdb")
    if kafka is not None and mongo is not None:
        print(f"STEPLINE_KAFKA_BOOTSTRAP={kafka.url}\nSTEPLINE_MONGO_URL={mongo.url}")
    return 0


def _cmd_down(_infra: DevInfra, args: argparse.Namespace) -> int:
    base: Path = args.dir
    for name in ("ferretdb", "postgres", "kafka"):
        server = load_server(base, name)
        if server is None:
            if name != "postgres":
                print(f"{name:9} not running (no pid file)")
            continue
        was_running = server.running
        server.stop()
        record_path(base, name).unlink(missing_ok=True)
        print(f"{name:9} {'stopped' if was_running else 'was not running'} (pid {server.pid})")
    if args.wipe:
        for sub in ("kafka", "ferretdb"):  # FerretDB's PostgreSQL cluster lives under ferretdb/
            rmtree(base / sub)
        print(f"wiped data under {base}")
    return 0


def _cmd_status(_infra: DevInfra, args: argparse.Namespace) -> int:
    base: Path = args.dir
    healthy = True
    for name in NAMES:
        server = load_server(base, name)
        if server is None:
            if name != "postgres":
                print(f"{name:9} down")
                healthy = False
            continue
        state = "ready" if server.answers() else ("running, not answering" if server.running else "dead")
        healthy = healthy and state == "ready"
        print(f"{name:9} {state}: {server.url} (pid {server.pid}, log {server.log_path})")
    return 0 if healthy else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devinfra",
                                description="Fetch, start and stop the development Kafka, FerretDB "
                                            "and language model.")
    p.add_argument("command", choices=["fetch", "up", "down", "status", "model"])
    p.add_argument("action", nargs="?", choices=sorted(MODEL_ACTIONS),
                   help="with `model`: what to do with the local language model")
    p.add_argument("--dir", type=Path, default=Path(".stepline/infra"),
                   help="data, logs and pid files (default: .stepline/infra)")
    p.add_argument("--cache", type=Path, default=None,
                   help="fetched jars and built binaries (default: $STEPLINE_INFRA_CACHE or .cache/infra)")
    p.add_argument("--kafka-port", type=int, default=DEFAULT_KAFKA_PORT)
    p.add_argument("--kafka-controller-port", type=int, default=0,
                   help="KRaft controller port (default: kafka port + 1)")
    p.add_argument("--mongo-port", type=int, default=DEFAULT_MONGO_PORT)
    p.add_argument("--model-port", type=int, default=DEFAULT_MODEL_PORT)
    p.add_argument("--wipe", action="store_true", help="down: also delete the data directories")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.dir = args.dir.resolve()
    infra = DevInfra(args.cache or default_cache_dir())
    commands: dict[str, Callable[[DevInfra, argparse.Namespace], int]] = {
        "fetch": _cmd_fetch, "up": _cmd_up, "down": _cmd_down, "status": _cmd_status, "model": model_command}
    try:
        return commands[args.command](infra, args)
    except InfraError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
