"""`python -m devinfra model up|down|fetch|status|provider` (``make model`` / ``model-down``):
the local language model of `devinfra.model`, with a pid file beside Kafka's and FerretDB's."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from devinfra.model import LLAMA_CPP_VERSION, MODEL_NAME, ModelBuild
from devinfra.records import load_server, record_path, write_record
from devinfra.server import Server

LOCAL_PROVIDER = "local"
"""The provider name `model provider` gives the local model in `STEPLINE_AI_PROVIDERS`."""


class ModelInfra(Protocol):
    def ensure_model(self) -> ModelBuild: ...

    def start_model(self, data_dir: Path, *, port: int) -> Server: ...


def provider_setting(base_url: str) -> list[dict[str, str]]:
    """The `STEPLINE_AI_PROVIDERS` value that points AI steps at the local model (no API key)."""
    return [{"name": LOCAL_PROVIDER, "kind": "openai", "baseUrl": base_url, "model": MODEL_NAME}]


def _fetch(infra: ModelInfra, _args: argparse.Namespace) -> int:
    began = time.monotonic()
    build = infra.ensure_model()
    print(f"model     {build.gguf}\nserver    {build.python} (llama-cpp-python {LLAMA_CPP_VERSION})  "
          f"({time.monotonic() - began:.1f} s)")
    return 0


def _up(infra: ModelInfra, args: argparse.Namespace) -> int:
    base: Path = args.dir
    base.mkdir(parents=True, exist_ok=True)
    server = load_server(base, "model")
    if server is not None and server.running:
        print(f"model     already running: {server.url} (pid {server.pid})")
    else:
        server = infra.start_model(base / "model", port=args.model_port)
        write_record(base, server)
        print(f"model     {server.url}  (pid {server.pid}, ready in {server.started_in:.1f} s, "
              f"log {server.log_path})")
    print(f"STEPLINE_AI_PROVIDERS='{json.dumps(provider_setting(server.url))}'")
    return 0


def _down(_infra: ModelInfra, args: argparse.Namespace) -> int:
    server = load_server(args.dir, "model")
    if server is None:
        print("model     not running (no pid file)")
        return 0
    was_running = server.running
    server.stop()
    record_path(args.dir, "model").unlink(missing_ok=True)
    print(f"model     {'stopped' if was_running else 'was not running'} (pid {server.pid})")
    return 0


def _status(_infra: ModelInfra, args: argparse.Namespace) -> int:
    server = load_server(args.dir, "model")
    if server is None:
        print("model     down")
        return 1
    ready = server.answers()
    state = "ready" if ready else ("running, not answering" if server.running else "dead")
    print(f"model     {state}: {server.url} (pid {server.pid}, log {server.log_path})")
    return 0 if ready else 1


def _provider(_infra: ModelInfra, args: argparse.Namespace) -> int:
    """Print the provider list of the running model (for `make run`); nothing and 1 when it is down."""
    server = load_server(args.dir, "model")
    if server is None or not server.answers():
        return 1
    print(json.dumps(provider_setting(server.url)))
    return 0


ACTIONS: dict[str, Callable[[ModelInfra, argparse.Namespace], int]] = {
    "up": _up, "down": _down, "fetch": _fetch, "status": _status, "provider": _provider}


def model_command(infra: ModelInfra, args: argparse.Namespace) -> int:
    action = args.action or "status"
    if action not in ACTIONS:
        print(f"error: model {action}: choose one of {', '.join(ACTIONS)}")
        return 2
    return ACTIONS[action](infra, args)
