"""The distributed deployment under fault injection: trigger, scheduler, two executors and notifier as
OS processes (tests/e2e/test_distributed_faults.py's `Cluster`), each replica with a stable
`STEPLINE_INSTANCE_ID` as a supervisor would restart it, on the session's Kafka broker and FerretDB.

Faults, one at a time, a random gap before each: SIGKILL of every service (restarted at once under
its instance id, as a new process with its own log `<replica>-r<n>.log`), both executors SIGKILLed
together, SIGSTOP of every service for a few seconds, a broker restart (SIGTERM, start), and a store
crash (FerretDB SIGKILLed, started again a second later).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.auth_helpers import key_in_store
from tests.conftest import free_port
from tests.e2e.test_distributed import wait_api
from tests.e2e.test_distributed_faults import Cluster
from tests.infra_fixtures import KafkaBroker

REPLICAS = {"trigger": "t1", "scheduler": "s1", "executor-1": "e1", "executor-2": "e2", "notifier": "n1"}
"""Replica → its instance id (so its Kafka consumers are static members: a restart takes its
partitions back at once, see docs/architecture.md, "Consumer-group recovery")."""
STORE_DOWN_SECONDS = 1.0


@dataclass
class Chaos:
    """The cluster, the servers under it, and the faults injected so far."""

    cluster: Cluster
    broker: Any
    """The broker's `devinfra.Server`."""
    store: Any
    """FerretDB's `devinfra.Server`."""
    incarnations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REPLICAS, 1))
    injected: list[tuple[float, float, str]] = field(default_factory=list)
    """(wall-clock start, seconds it took, what) of every fault."""

    def name(self, replica: str) -> str:
        n = self.incarnations[replica]
        return replica if n == 1 else f"{replica}-r{n}"

    def start(self, replica: str) -> None:
        extra = {"STEPLINE_INSTANCE_ID": REPLICAS[replica]}
        if replica == "trigger":
            extra["STEPLINE_PORT"] = str(self.cluster.api_port)
        self.cluster.start(self.name(replica), extra)

    async def kill(self, *replicas: str) -> None:
        """SIGKILL the replicas together, then start each again (once its old process is gone)."""
        await asyncio.gather(*(self.cluster.kill(self.name(r)) for r in replicas))
        for r in replicas:
            self.incarnations[r] += 1
            self.start(r)

    async def pause(self, seconds: float, *replicas: str) -> None:
        procs = [self.cluster.procs[self.name(r)] for r in replicas]
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            for p in procs:
                p.send_signal(signal.SIGCONT)

    async def restart_broker(self) -> None:
        await asyncio.to_thread(self.broker.restart)

    async def crash_store(self) -> None:
        await asyncio.to_thread(self.store.kill)
        await asyncio.sleep(STORE_DOWN_SECONDS)
        await asyncio.to_thread(self.store.restart)

    async def inject(self, what: str, fault: Callable[[Chaos], Awaitable[None]]) -> None:
        began = time.time()
        await fault(self)
        self.injected.append((began, time.time() - began, what))


Fault = tuple[str, Callable[[Chaos], Awaitable[None]]]


def kinds(pause: float, scheduler_pause: float) -> list[Fault]:
    """Every kind of fault once: 13 in all."""
    def kill(*r: str) -> Callable[[Chaos], Awaitable[None]]:
        return lambda ch: ch.kill(*r)

    def stop(s: float, r: str) -> Callable[[Chaos], Awaitable[None]]:
        return lambda ch: ch.pause(s, r)

    return [*[(f"SIGKILL {r}", kill(r)) for r in REPLICAS],
            ("SIGKILL both executors", kill("executor-1", "executor-2")),
            *[(f"SIGSTOP {r} {s:g} s", stop(s, r))
              for r in REPLICAS for s in [scheduler_pause if r == "scheduler" else pause]],
            ("broker restart", Chaos.restart_broker), ("store crash", Chaos.crash_store)]


async def inject_until(chaos: Chaos, faults: list[Fault], rng: random.Random, gaps: tuple[float, float],
                       load: asyncio.Task[None]) -> None:
    """Pass after pass over `faults` in a shuffled order, a gap drawn from `gaps` before each: one
    whole pass, then on while `load` runs."""
    injected = 0
    while True:
        for what, fault in rng.sample(faults, len(faults)):
            if injected >= len(faults) and load.done():
                return
            await asyncio.sleep(rng.uniform(*gaps))
            await chaos.inject(what, fault)
            injected += 1


@asynccontextmanager
async def chaos_cluster(tmp_path: Path, kafka: KafkaBroker, store: Any,
                        mongo_url: str) -> AsyncIterator[tuple[Chaos, httpx.AsyncClient]]:
    """The five services started and ready, and an API client with an owner key."""
    api_port = free_port()
    database = f"stepline_chaos_{os.getpid()}_{api_port}"
    env = {**os.environ, "STEPLINE_BUS_URL": f"kafka://{kafka.bootstrap}", "STEPLINE_STORE_URL": mongo_url,
           "STEPLINE_MONGO_DATABASE": database, "STEPLINE_PARTITIONS": "4", "STEPLINE_LEASE_SECONDS": "3",
           "STEPLINE_STALE_SECONDS": "2", "STEPLINE_SWEEP_INTERVAL_SECONDS": "0.5"}
    with ExitStack() as stack:
        chaos = Chaos(Cluster(tmp_path, env, stack, api_port), kafka.server, store)
        for replica in REPLICAS:
            chaos.start(replica)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as client:
            await wait_api(client, chaos.cluster.procs)
            client.headers.update(await key_in_store(mongo_url, database))
            await chaos.cluster.all_ready()
            yield chaos, client
