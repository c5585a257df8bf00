"""`make bench`, second half: distributed-mode throughput and dispatch latency.

Starts a development Kafka broker and FerretDB (`devinfra`, cached in `<repo>/.cache/infra`,
data in a temporary directory, free loopback ports), then trigger, scheduler, two executors and
notifier as separate OS processes, and drives the workflows of `bench_embedded` through the HTTP API
with a closed loop of concurrent runs: each one is started by `POST /v1/workflows/{id}/runs` and
awaited by its `RunCompleted` event on the run-events topic (a consumer group of the benchmark's own;
long-polling `GET /v1/workflows/runs/{id}?wait=` would read the run from the store every 25 ms per
waiting client, load that the benchmark should not add). Its node runs are read through the API after
the clock stopped. Timings come from the node runs the API returns:
- runs/s and node completions/s over the wall time of the whole batch;
- dispatch latency: from a node run's creation by the scheduler (just before ExecuteNode is
  published) to an executor's claim, p50 and p99 over every executed node (API timestamps have
  millisecond resolution).
A few warm-up runs per workflow, not counted, let every consumer group settle first.

A second table gives the CPU milliseconds per node completion of each process (Kafka, FerretDB, its
PostgreSQL, each service, this client) and of the rest of the machine in the same interval: on a
small shared machine the wall-clock rate depends on the neighbours, the CPU cost does not.
`STEPLINE_PARTITIONS` (default 8) sets the topics' partitions; `STEPLINE_BENCH_PROFILE_DIR=DIR` runs
each service under cProfile and leaves `DIR/<service>.prof`.

    .venv/bin/python tests/bench/bench_distributed.py [--runs 200] [--in-flight 16 ...] [--warmup 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from bench_embedded import chain, fan
from cpu_usage import CpuMeter, process_cpu, tree_cpu

from libs.access.keystore import ApiKeys, Workspaces
from libs.bus.kafka import KafkaBus
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from libs.runtime.adapters import build_store
from libs.runtime.settings import CommonSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))  # devinfra/ is not installed: it is imported from the checkout

from devinfra import DevInfra, InfraError, Server, free_port  # noqa: E402

CACHE_DIR = REPO_ROOT / ".cache" / "infra"
SERVICES: dict[str, dict[str, str]] = {
    "trigger": {}, "scheduler": {}, "executor-1": {"STEPLINE_INSTANCE_ID": "e1"},
    "executor-2": {"STEPLINE_INSTANCE_ID": "e2"}, "notifier": {}}
STOP_TIMEOUT = 30.0
PARTITIONS = int(os.environ.get("STEPLINE_PARTITIONS", "8"))
"""Partitions per topic: each service handles one message at a time per partition it owns."""
READY_TIMEOUT = 60.0
LOG_TAIL_LINES = 15

Procs = dict[str, subprocess.Popen[bytes]]


@dataclass(frozen=True)
class Row:
    workflow: str
    in_flight: int
    runs: int
    ok: int
    seconds: float
    nodes_completed: int
    latencies_ms: list[float]
    cpu: dict[str, float]
    """CPU seconds used during the row, by component, and by the whole machine ("machine")."""

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.seconds

    @property
    def nodes_per_s(self) -> float:
        return self.nodes_completed / self.seconds


# ---- processes ----------------------------------------------------------------------------------

def progress(message: str) -> None:
    print(f"bench_distributed: {message}", file=sys.stderr, flush=True)


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def infrastructure(data: Path) -> Iterator[tuple[Server, Server]]:
    """Kafka and FerretDB (with its PostgreSQL, when installed) on free loopback ports; all stopped on exit."""
    infra = DevInfra(CACHE_DIR)
    progress("starting Kafka and FerretDB")
    with ExitStack() as stack:
        kafka = stack.enter_context(running(infra.start_kafka(data / "kafka", port=free_port(),
                                                              controller_port=free_port())))
        mongo = stack.enter_context(running(infra.start_ferretdb(data / "ferretdb", port=free_port())))
        backend = "PostgreSQL" if mongo.dependencies else "SQLite"
        progress(f"Kafka ready in {kafka.started_in:.1f} s, FerretDB ({backend} backend) in {mongo.started_in:.1f} s")
        yield kafka, mongo


def cpu_meter(kafka: Server, mongo: Server, procs: Procs) -> CpuMeter:
    parts: dict[str, Callable[[], float]] = {
        "kafka": partial(tree_cpu, kafka.pid), "ferretdb": partial(process_cpu, mongo.pid)}
    for dependency in mongo.dependencies:
        parts[dependency.name] = partial(tree_cpu, dependency.pid)
    for name, proc in procs.items():
        parts[name] = partial(process_cpu, proc.pid)
    parts["bench client"] = lambda: sum(os.times()[:2])
    return CpuMeter(parts)


def service_env(kafka: str, mongo: str, api_port: int) -> dict[str, str]:
    return {**os.environ, "STEPLINE_BUS_URL": f"kafka://{kafka}", "STEPLINE_STORE_URL": mongo,
            "STEPLINE_MONGO_DATABASE": f"stepline_bench_{os.getpid()}", "STEPLINE_PARTITIONS": str(PARTITIONS),
            "STEPLINE_LEASE_SECONDS": "3", "STEPLINE_STALE_SECONDS": "30",
            "STEPLINE_SWEEP_INTERVAL_SECONDS": "0.5", "STEPLINE_PORT": str(api_port)}


def spawn(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    module = f"services.{name.split('-')[0]}"
    profile = env.get("STEPLINE_BENCH_PROFILE_DIR")
    argv = ["-m", "cProfile", "-o", f"{profile}/{name}.prof", "-m", module] if profile else ["-m", module]
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, *argv], env=env, cwd=REPO_ROOT,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def stop_all(procs: Procs) -> None:
    """SIGTERM every process, wait up to STOP_TIMEOUT for all of them, then SIGKILL what is left."""
    alive = [p for p in procs.values() if p.poll() is None]
    for proc in alive:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in alive:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def services(env: dict[str, str], log_dir: Path) -> Iterator[Procs]:
    procs: Procs = {}
    try:
        for name, extra in SERVICES.items():
            procs[name] = spawn(name, {**env, **extra}, log_dir / f"{name}.log")
        yield procs
    finally:
        stop_all(procs)


def print_log_tails(log_dir: Path) -> None:
    for log in sorted(log_dir.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        print(f"---- last lines of {log.name}\n" + "\n".join(lines), file=sys.stderr)


# ---- driving runs through the API ---------------------------------------------------------------

async def wait_ready(client: httpx.AsyncClient, procs: Procs) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        dead = [n for n, p in procs.items() if p.poll() is not None]
        if dead:
            raise RuntimeError(f"services exited during start-up: {dead}")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the trigger API did not become ready within {READY_TIMEOUT:.0f} s")


async def create_workflow(client: httpx.AsyncClient, definition: dict[str, Any]) -> None:
    answer = await client.post("/v1/workflows", json=definition)
    if answer.status_code != 201:
        raise RuntimeError(f"creating {definition['identifier']}: {answer.status_code} {answer.text}")


async def start_run(client: httpx.AsyncClient, workflow: str) -> str:
    """The trigger declares no inputs, so none are sent (the API refuses undeclared ones)."""
    answer = await client.post(f"/v1/workflows/{workflow}/runs", json={})
    if answer.status_code not in (201, 202):
        raise RuntimeError(f"starting a run of {workflow}: {answer.status_code} {answer.text}")
    run_id: str = answer.json()["workflowRun"]["identifier"]
    return run_id


class Completions:
    """RunCompleted events from the run-events topic, read by a consumer group of the benchmark's own:
    a run is awaited without asking the store anything (a long-polling API client would read the run
    from the store every 25 ms while it waits, which is load the benchmark should not add)."""

    def __init__(self) -> None:
        self._done: dict[str, asyncio.Future[None]] = {}

    def _future(self, run_id: str) -> asyncio.Future[None]:
        return self._done.setdefault(run_id, asyncio.get_running_loop().create_future())

    async def handle(self, envelope: Envelope) -> None:
        if envelope.type == v1.RunCompleted.TYPE and envelope.subject:
            future = self._future(envelope.subject)
            if not future.done():
                future.set_result(None)

    async def wait(self, run_id: str, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._future(run_id)), timeout)
        except TimeoutError:
            raise RuntimeError(f"run {run_id} did not complete within {timeout:.0f} s") from None


async def fetch_run(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/workflows/runs/{run_id}")
    answer.raise_for_status()
    run: dict[str, Any] = answer.json()["workflowRun"]
    return run


async def closed_loop(client: httpx.AsyncClient, completions: Completions, workflow: str, runs: int,
                      in_flight: int, timeout: float, *, meter: CpuMeter,
                      before: dict[str, float]) -> tuple[list[dict[str, Any]], float, dict[str, float]]:
    """`runs` runs with `in_flight` of them kept going at once; (completed runs, wall seconds, CPU
    seconds by component since `before`). The runs' node runs are read through the API after the
    clock and the CPU meter stopped."""
    tickets = iter(range(runs))
    done: list[str] = []

    async def lane() -> None:
        for _ in tickets:  # shared by every lane: `runs` runs in all
            run_id = await start_run(client, workflow)
            await completions.wait(run_id, timeout)
            done.append(run_id)

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(in_flight, runs))))
    seconds = time.perf_counter() - began
    cpu = meter.since(before)
    return [await fetch_run(client, run_id) for run_id in done], seconds, cpu


# ---- figures ------------------------------------------------------------------------------------

def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def summarise(workflow: str, in_flight: int, runs: list[dict[str, Any]], seconds: float,
              cpu: dict[str, float]) -> Row:
    executed = [nr for run in runs for nr in run["nodeRuns"] if nr["nodeIdentifier"] != "trigger"]
    latencies = sorted((epoch(nr["startedAt"]) - epoch(nr["createdAt"])) * 1000
                       for nr in executed if nr["startedAt"] is not None)
    return Row(workflow=workflow, in_flight=in_flight, runs=len(runs),
               ok=sum(r["result"] == "SUCCESS" for r in runs), seconds=seconds,
               nodes_completed=sum(nr["status"] == "COMPLETED" for nr in executed), latencies_ms=latencies,
               cpu=cpu)


def p99(sorted_values: list[float]) -> float:
    """The same rank as bench_embedded uses, so the two tables compare."""
    return sorted_values[max(int(len(sorted_values) * 0.99) - 1, 0)]


def print_table(rows: list[Row], runs: int) -> None:
    backend = "PostgreSQL" if rows and "postgres" in rows[0].cpu else "SQLite"
    print(f"\nDistributed mode — {runs} runs per row, Kafka + FerretDB ({backend} backend), trigger, scheduler, "
          f"2 executors and notifier as separate processes, {PARTITIONS} partitions, runs started over HTTP\n")
    print(f"{'workflow':<10} {'in flight':>9} {'runs':>5} {'ok':>5} {'seconds':>8} {'runs/s':>8} {'nodes/s':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7}")
    for r in rows:
        print(f"{r.workflow:<10} {r.in_flight:>9} {r.runs:>5} {r.ok:>5} {r.seconds:>8.2f} {r.runs_per_s:>8.1f} "
              f"{r.nodes_per_s:>8.0f} {statistics.median(r.latencies_ms):>7.2f} {p99(r.latencies_ms):>7.2f}")
    print("\nnodes/s: node completions per second (trigger nodes excluded); p50/p99: dispatch latency, "
          "node run created → claimed by an executor.")
    parts = [name for name in rows[0].cpu if name != "machine"] if rows else []
    print(f"\nCPU milliseconds per node completion, by process ({os.cpu_count()} cores on this machine):\n")
    print(f"{'workflow':<10} {'in flight':>9} " + " ".join(f"{_short(p):>9}" for p in parts)
          + f" {'ours':>7} {'others':>7}")
    for r in rows:
        ours = sum(r.cpu[p] for p in parts)
        others = max(r.cpu["machine"] - ours, 0.0)
        per_node = [1000 * r.cpu[p] / max(r.nodes_completed, 1) for p in parts]
        print(f"{r.workflow:<10} {r.in_flight:>9} " + " ".join(f"{v:>9.2f}" for v in per_node)
              + f" {1000 * ours / max(r.nodes_completed, 1):>7.2f} {1000 * others / max(r.nodes_completed, 1):>7.2f}")
    print("\nours: every process of the cluster and the benchmark client; others: the rest of the machine's "
          "busy time in the same interval (other load competing for the cores).")


def _short(name: str) -> str:
    return {"bench client": "client", "executor-1": "exec-1", "executor-2": "exec-2"}.get(name, name)[:9]


# ---- main ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    runs: int
    levels: list[int]
    warmup: int
    run_timeout: float


async def owner_key(env: dict[str, str]) -> dict[str, str]:
    """A key created offline in the services' store (`stepline keys create --store-url`), as headers."""
    store = build_store(CommonSettings(store_url=env["STEPLINE_STORE_URL"],
                                       mongo_database=env["STEPLINE_MONGO_DATABASE"]))
    await store.open()
    try:
        await Workspaces(store).ensure_default()
        _, key = await ApiKeys(store).create(name="bench", workspace="default", role="owner", user="bench")
    finally:
        await store.close()
    return {"Authorization": f"Bearer {key}"}


async def bench(api_port: int, kafka: str, procs: Procs, meter: CpuMeter, plan: Plan,
                env: dict[str, str]) -> list[Row]:
    definitions = (chain(10), fan(20))
    rows: list[Row] = []
    completions = Completions()
    events = KafkaBus(kafka, partitions=PARTITIONS, client_id="stepline-bench")
    events.subscribe(topics.RUN_EVENTS, f"stepline-bench-{os.getpid()}", completions.handle)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as client:
        await wait_ready(client, procs)
        client.headers.update(await owner_key(env))
        await events.start()
        try:
            for definition in definitions:
                await create_workflow(client, definition)
                if plan.warmup:
                    await closed_loop(client, completions, definition["identifier"], plan.warmup,
                                      max(plan.levels), plan.run_timeout, meter=meter, before={})
            progress("services ready, workflows created; measuring")
            for in_flight in plan.levels:
                for definition in definitions:
                    before = meter.snapshot()
                    done, seconds, cpu = await closed_loop(client, completions, definition["identifier"],
                                                           plan.runs, in_flight, plan.run_timeout,
                                                           meter=meter, before=before)
                    rows.append(summarise(definition["identifier"], in_flight, done, seconds, cpu))
                    progress(f"{definition['identifier']}, {in_flight} in flight: {seconds:.1f} s")
        finally:
            await events.stop()
    return rows


def measure(data: Path, plan: Plan) -> list[Row]:
    """Everything this starts is stopped on the way out, whatever happens."""
    api_port = free_port()
    with infrastructure(data) as (kafka, mongo):
        env = service_env(kafka.url, mongo.url, api_port)
        with services(env, data) as procs:
            try:
                return asyncio.run(bench(api_port, kafka.url, procs, cpu_meter(kafka, mongo, procs), plan, env))
            except Exception:
                print_log_tails(data)
                raise


def main(plan: Plan) -> int:
    with tempfile.TemporaryDirectory(prefix="stepline-bench-") as tmp:
        try:
            rows = measure(Path(tmp), plan)
        except InfraError as exc:
            progress(f"the development servers could not be started or stopped: {exc.message}")
            return 1
    print_table(rows, plan.runs)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="runs per workflow and row")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[16],
                        help="runs kept in flight (closed loop); one table row per value and workflow")
    parser.add_argument("--warmup", type=int, default=4, help="uncounted runs per workflow before measuring")
    parser.add_argument("--run-timeout", type=float, default=120.0,
                        help="seconds one run may take before the benchmark gives up")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that a stopped bench still stops its servers
    sys.exit(main(Plan(args.runs, args.in_flight, args.warmup, args.run_timeout)))
