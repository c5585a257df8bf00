"""`stepline up --distributed`: the production shape on one machine.

Starts the dev Kafka broker and FerretDB (or uses the ones named by `--kafka` / `--mongo`), then the
four services as child processes (`python -m services.<name>`, two executors), serves the same API
as embedded mode on `--host:--port`, and on SIGINT/SIGTERM stops the services gracefully before the
servers it started. Logs go to `<data-dir>/logs/<service>.log`.

Each process's label (`scheduler`, `executor-1`, `executor-2`, ...) is its `STEPLINE_INSTANCE_ID`:
stable across restarts and unique per replica, as Kafka static group membership needs
(libs/bus/kafka/membership.py).

The dev servers come from the source checkout's `devinfra` package, which is not installed: import
this module after `stepline.checkout.devinfra_on_path()` (the CLI's `up --distributed` does).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devinfra import DevInfra, Server, default_cache_dir, free_port
from libs.access.bootstrap import KEY_FILE, bootstrap, read_key_file
from libs.runtime.adapters import build_store
from libs.runtime.settings import CommonSettings
from libs.secrets.keyfile import configured_or_stored_key
from stepline.settings import EmbeddedSettings

SERVICES = ("scheduler", "executor", "executor", "notifier", "trigger")
READY_TIMEOUT = 120.0


@dataclass
class Cluster:
    api_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)


def start_infra(cluster: Cluster, data_dir: Path, kafka: str | None, mongo: str | None) -> tuple[str, str]:
    infra = DevInfra(default_cache_dir())
    if kafka is None:
        server = infra.start_kafka(data_dir / "infra" / "kafka", port=free_port(), controller_port=free_port())
        cluster.servers.append(server)
        kafka = server.url
    if mongo is None:
        server = infra.start_ferretdb(data_dir / "infra" / "ferretdb", port=free_port())
        cluster.servers.append(server)
        mongo = server.url
    return kafka, mongo


def service_env(settings: EmbeddedSettings, kafka: str, mongo: str) -> dict[str, str]:
    # Every service gets the same secrets key: the configured one, else `<data_dir>/secrets.key`.
    key = configured_or_stored_key(settings.secrets_key, settings.data_dir)
    return {**os.environ, "STEPLINE_BUS_URL": f"kafka://{kafka}", "STEPLINE_STORE_URL": mongo,
            "STEPLINE_HOST": settings.host, "STEPLINE_PORT": str(settings.port),
            "STEPLINE_PARTITIONS": str(settings.partitions), "STEPLINE_SECRETS_KEY": key,
            "STEPLINE_API_URL": settings.own_api_url()}


def start_services(cluster: Cluster, env: dict[str, str], logs: Path) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(SERVICES):
        label = f"{name}-{index}" if name == "executor" else name
        with (logs / f"{label}.log").open("ab") as out:
            cluster.processes[label] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"], env={**env, "STEPLINE_INSTANCE_ID": label},
                stdout=out, stderr=subprocess.STDOUT)


def wait_ready(cluster: Cluster) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        dead = [name for name, p in cluster.processes.items() if p.poll() is not None]
        if dead:
            raise RuntimeError(f"services exited during start-up: {', '.join(dead)} (see their logs)")
        try:
            if httpx.get(f"{cluster.api_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API at {cluster.api_url} did not become ready in {READY_TIMEOUT:g}s")


def bootstrap_keys(store_url: str, data_dir: Path) -> str | None:
    """Create the first owner key in the store when it has none (written to `<data_dir>/admin.key`,
    as in embedded mode); the owner key this data directory holds, if any."""
    async def first_start() -> None:
        store = build_store(CommonSettings(store_url=store_url))
        await store.open()
        try:
            await bootstrap(store, data_dir, now=time.time())
        finally:
            await store.close()
    asyncio.run(first_start())
    return read_key_file(data_dir / KEY_FILE)


def load_examples(api_url: str, directory: Path, key: str | None) -> list[str]:
    loaded = []
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    for path in sorted(directory.glob("*.json")):
        response = httpx.post(f"{api_url}/v1/workflows", json=json.loads(path.read_text()), timeout=30,
                              headers=headers)
        if response.status_code == 201:
            loaded.append(path.stem)
    return loaded


def stop(cluster: Cluster) -> None:
    """Services first (graceful: they finish in-flight work and commit), then the servers."""
    for process in cluster.processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in cluster.processes.values():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for server in reversed(cluster.servers):
        server.stop()


def run(settings: EmbeddedSettings, *, kafka: str | None, mongo: str | None, examples: Path | None) -> int:
    cluster = Cluster(api_url=f"http://{settings.host}:{settings.port}")
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    try:
        kafka_url, mongo_url = start_infra(cluster, settings.data_dir, kafka, mongo)
        key = bootstrap_keys(mongo_url, settings.data_dir)
        start_services(cluster, service_env(settings, kafka_url, mongo_url), settings.data_dir / "logs")
        wait_ready(cluster)
        if examples is not None:
            load_examples(cluster.api_url, examples, key)
        print(f"Stepline (distributed) is up at {cluster.api_url}: Kafka {kafka_url}, store {mongo_url}, "
              f"logs in {settings.data_dir / 'logs'}; owner API key in {settings.data_dir / KEY_FILE}", flush=True)
        return supervise(cluster, stopping)
    finally:
        stop(cluster)


def supervise(cluster: Cluster, stopping: list[int]) -> int:
    """Wait for a signal; a service that dies on its own ends everything with exit code 1."""
    while not stopping:
        dead = [name for name, p in cluster.processes.items() if p.poll() is not None]
        if dead:
            print(f"stepline: error: {', '.join(dead)} stopped unexpectedly; see its log", file=sys.stderr)
            return 1
        time.sleep(0.5)
    return 0
