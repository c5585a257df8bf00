"""Chaos (issue 11): the distributed deployment (tests/chaos/faults.py) runs the example shapes
(tests/chaos/workload.py) first without faults, then while every service is SIGKILLed and SIGSTOPped,
both executors are killed at once, the broker is restarted and the store crashes; then every
invariant of tests/chaos/invariants.py must hold, and the recovery figures are printed.

`STEPLINE_CHAOS_PROFILE` chooses the profile: `short` (the default, part of `make test`, about two
minutes: every kind of fault once, timing figures printed and never asserted) or `long` (`make
chaos`: 300 runs under faults, and the issue's thresholds asserted: p99 under faults ≤ 3 × the
fault-free p99 + 5 s, no stall over 10 s). `STEPLINE_CHAOS_SEED` replays an order of faults.

Besides the figures it prints where the latency under faults went (each run's critical path cut into
hops, tests/chaos/hops.py) and writes every run's record to `runs.json` in the test's directory,
beside the services' logs (`pytest --basetemp DIR` keeps them).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.faults import Chaos, chaos_cluster, inject_until, kinds
from tests.chaos.figures import HEADER, Figures, breaches, figures, slowest
from tests.chaos.hops import breakdown
from tests.chaos.invariants import Verdict, judge
from tests.chaos.workload import Tracked, approver, plan, settle, start_paced, stopped
from tests.conftest import Target
from tests.e2e import example_runs
from tests.infra_fixtures import KafkaBroker

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.mongo]


@dataclass(frozen=True)
class Profile:
    name: str
    free_runs: int
    fault_runs: int
    pace: float
    """Seconds between two starts, in both phases (the same load with and without faults)."""
    gaps: tuple[float, float]
    """Seconds before each fault, drawn uniformly."""
    pause: float
    scheduler_pause: float
    settle_within: float
    """How long runs may take to complete once the load is over; those left are stuck."""
    thresholds: bool
    timeout: int


PROFILES = {
    "short": Profile("short", free_runs=18, fault_runs=84, pace=0.6, gaps=(1.0, 2.5), pause=3.0,
                     scheduler_pause=5.0, settle_within=150.0, thresholds=False, timeout=480),
    "long": Profile("long", free_runs=100, fault_runs=300, pace=0.4, gaps=(2.0, 5.0), pause=3.0,
                    scheduler_pause=5.0, settle_within=300.0, thresholds=True, timeout=1500),
}
PROFILE = PROFILES[os.environ.get("STEPLINE_CHAOS_PROFILE", "short")]
START_WITHIN = 120.0
"""How long one start may go unanswered (retried meanwhile) before the test gives up on it."""


@pytest.mark.timeout(PROFILE.timeout)
async def test_runs_survive_chaos(tmp_path: Path, target: Target, kafka_broker: KafkaBroker,
                                  mongo_server: Any, mongo_url: str) -> None:
    if kafka_broker.server is None or mongo_server is None:
        pytest.skip("the chaos test restarts the broker and the store, so it needs the ones this session started")
    p, seed = PROFILE, int(os.environ.get("STEPLINE_CHAOS_SEED") or random.randrange(10_000))
    free = plan("fault-free", 0, p.free_runs, target.base_url)
    faulted = plan("faults", p.free_runs, p.fault_runs, target.base_url)
    async with chaos_cluster(tmp_path, kafka_broker, mongo_server, mongo_url) as (chaos, client):
        await example_runs.create_examples(client, target.base_url)
        approving = approver(client, target, free + faulted)
        answering = asyncio.create_task(approving.run())
        try:
            await start_paced(client, free, p.pace, START_WITHIN)
            await settle(client, free, p.settle_within, lambda: alive(chaos))
            await under_faults(chaos, client, faulted, random.Random(seed))
            await settle(client, faulted, p.settle_within, lambda: alive(chaos))
        finally:
            await stopped(answering)
        dead = {n: chaos.cluster.log_tail(n) for n in chaos.cluster.dead()}
    verdict = judge(free + faulted, target, approving.refused)
    rows = [figures("fault-free", free), figures("faults", faulted)]
    dump(tmp_path / "runs.json", free + faulted, approving.timings)
    print("\n" + render(seed, chaos, verdict, rows, faulted, approving.timings))
    assert not dead, f"services exited on their own: {dead}"
    assert not verdict.violations, {name: items[:10] for name, items in verdict.violations.items()}
    if p.thresholds:
        assert not breaches(rows[0], rows[1]), breaches(rows[0], rows[1])


async def under_faults(chaos: Chaos, client: Any, runs: list[Tracked], rng: random.Random) -> None:
    """Start `runs` at the profile's pace while faults are injected, until both are done."""
    load = asyncio.create_task(start_paced(client, runs, PROFILE.pace, START_WITHIN))
    try:
        await inject_until(chaos, kinds(PROFILE.pause, PROFILE.scheduler_pause), rng, PROFILE.gaps, load)
        await load
    finally:
        await stopped(load)


def alive(chaos: Chaos) -> None:
    dead = chaos.cluster.dead()
    assert not dead, f"services exited on their own: { {n: chaos.cluster.log_tail(n) for n in dead} }"


def dump(path: Path, runs: list[Tracked], approvals: dict[str, tuple[float, float]]) -> None:
    """Every run as the test saw it, for a closer look at a slow one (`tests/chaos/hops.py`)."""
    path.write_text(json.dumps({"runs": [{"key": t.key, "phase": t.phase, "sentAt": t.sent_at, "answered": t.answered,
                                          "run": t.run} for t in runs], "approvals": approvals}))


def render(seed: int, chaos: Chaos, v: Verdict, rows: list[Figures], faulted: list[Tracked],
           approvals: dict[str, tuple[float, float]]) -> str:
    t0 = min(t.sent_at for t in faulted)
    stall_end = rows[1].stall_at
    before = [what for began, _, what in chaos.injected if began <= stall_end]
    logs = {p.stem: len(p.read_text(errors="replace").splitlines()) for p in sorted(chaos.cluster.tmp.glob("*.log"))}
    began = time.strftime("%H:%M:%S", time.gmtime(t0))
    faults = ", ".join(f"+{at - t0:.1f} {what} ({took:.1f})" for at, took, what in chaos.injected)
    lines = [
        f"chaos, {PROFILE.name} profile, seed {seed}: {len(chaos.injected)} faults", HEADER, *(r.row() for r in rows),
        f"runs accepted {v.accepted} / completed {v.completed} / stuck {len(v.stuck)}; node runs succeeded twice "
        f"{len(v.doubled)}; wrong results {len(v.wrong)}; effects on the target under two keys {len(v.two_keys)}",
        f"target: {v.target_requests} requests, {v.target_failed} failed "
        f"({100 * v.target_failed / max(1, v.target_requests):.0f} %), {v.resent_same_key} re-sent under the same key",
        f"longest stall under faults ended {stall_end - t0:.1f} s into the phase, after: {before[-1] if before else '-'}",
        f"faults (s into the phase, which began {began} UTC; s taken): {faults}",
        "log lines: " + ", ".join(f"{name} {n}" for name, n in logs.items()),
        "critical path under faults, mean s per hop (tests/chaos/hops.py):", *breakdown(faulted, approvals),
        "slowest runs under faults (s into the phase):", *slowest(faulted, t0)]
    if v.lingering:
        lines.append(f"WARNING: {len(v.lingering)} node runs of completed runs are not COMPLETED: {v.lingering[:5]}")
    return "\n".join(lines)
