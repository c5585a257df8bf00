"""Consumer-group recovery, measured (issue 11): how long partitions go unserved when a member is
SIGKILLed and restarted, killed for good, or stopped on purpose, with static membership (what the
services use) and with dynamic membership (a new member id per start, as before) for comparison.

Members are `KafkaBus` replicas in their own processes (tests/contract/kafka_members.py), two per
group on one 8-partition topic (the executor's shape), or one replica with two topics in one group
(the scheduler's). A fault happens at t0; the figure is the time from t0 to the partition-assignment
event after which the live members together hold every partition again (the events' own
timestamps; a restart includes starting the replacement process, ~1 s of Python imports).
"rebalances" says whether the member that was not touched had its partitions revoked.

    .venv/bin/python tests/bench/bench_recovery.py [--session 10] [--rounds 3] [--bootstrap HOST:PORT]

Without `--bootstrap` a development broker is started (`devinfra`, data in a temporary
directory) and stopped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from devinfra import DevInfra, free_port  # noqa: E402
from tests.contract.kafka_members import Member  # noqa: E402

ALL = set(range(8))
GUARD = 120.0


@dataclass
class Outcome:
    seconds: float
    rebalanced: bool | None
    """Whether the member left alone had its partitions revoked (None: there is no other member)."""


@dataclass(frozen=True)
class Setup:
    bootstrap: str
    session: float
    static: bool

    def names(self, base: str) -> tuple[str, str]:
        suffix = uuid.uuid4().hex[:8]
        return f"bench.recovery.{base}.{suffix}", f"bench.recovery.g.{suffix}"

    async def member(self, replica: str, group: str, topics: list[str]) -> Member:
        return await Member.start(self.bootstrap, replica, group, topics, session=self.session, static=self.static)


def holds_all(members: list[Member], topic: str) -> bool:
    held = [m.assigned(topic) for m in members]
    return set().union(*held) == ALL and sum(len(h) for h in held) == len(ALL)


async def until(members: list[Member], done: Callable[[], bool]) -> float:
    """Await the event after which `done()` holds; that event's timestamp."""
    async with asyncio.timeout(GUARD):
        while not done():
            waits = [asyncio.ensure_future(m.wait_for(lambda e: True, after=len(m.events))) for m in members]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
    return max(float(e["t"]) for m in members for e in m.events if "change" in e)


async def pair(setup: Setup, base: str) -> tuple[Member, Member, str, str]:
    topic, group = setup.names(base)
    a = await setup.member("a", group, [topic])
    await until([a], lambda: a.assigned(topic) == ALL)
    b = await setup.member("b", group, [topic])
    await until([a, b], lambda: holds_all([a, b], topic) and bool(b.assigned(topic)))
    return a, b, topic, group


async def kill_and_restart(setup: Setup) -> Outcome:
    a, b, topic, group = await pair(setup, "restart")
    b_before, t0 = len(b.events), time.time()
    a.kill()
    restarted = await setup.member("a", group, [topic])
    try:
        done = await until([restarted, b], lambda: holds_all([restarted, b], topic) and bool(restarted.assigned(topic)))
        return Outcome(done - t0, any("change" in e for e in b.events[b_before:]))
    finally:
        await stop_all([a, b, restarted])


async def kill_for_good(setup: Setup) -> Outcome:
    a, b, topic, _ = await pair(setup, "gone")
    t0 = time.time()
    a.kill()
    try:
        return Outcome(await until([b], lambda: b.assigned(topic) == ALL) - t0, True)
    finally:
        await stop_all([a, b])


async def graceful_stop(setup: Setup) -> Outcome:
    a, b, topic, _ = await pair(setup, "stop")
    t0 = time.time()
    stopping = asyncio.ensure_future(a.stop())
    try:
        return Outcome(await until([b], lambda: b.assigned(topic) == ALL) - t0, True)
    finally:
        await stopping
        await stop_all([b])


async def scheduler_restart(setup: Setup) -> Outcome:
    commands, group = setup.names("commands")
    results = commands.replace(".commands.", ".results.")
    first = await setup.member("scheduler", group, [commands, results])
    await until([first], lambda: first.assigned(commands) == first.assigned(results) == ALL)
    t0 = time.time()
    first.kill()
    restarted = await setup.member("scheduler", group, [commands, results])
    try:
        done = await until([restarted], lambda: restarted.assigned(commands) == restarted.assigned(results) == ALL)
        return Outcome(done - t0, None)
    finally:
        await stop_all([first, restarted])


async def stop_all(members: list[Member]) -> None:
    for member in members:
        member.kill()
        await member.stop()


SCENARIOS: dict[str, Callable[[Setup], Awaitable[Outcome]]] = {
    "executor SIGKILLed, restarted at once": kill_and_restart,
    "scheduler (2 consumers) SIGKILLed, restarted": scheduler_restart,
    "executor SIGKILLed, not restarted": kill_for_good,
    "executor stopped gracefully (scale-down)": graceful_stop,
}


async def measure(bootstrap: str, session: float, rounds: int) -> list[tuple[str, str, list[Outcome]]]:
    rows = []
    for title, scenario in SCENARIOS.items():
        for static in (True, False):
            setup = Setup(bootstrap, session, static)
            outcomes = [await scenario(setup) for _ in range(rounds)]
            rows.append((title, "static" if static else "dynamic", outcomes))
            print(f"  {title} ({rows[-1][1]}): {[round(o.seconds, 2) for o in outcomes]}", file=sys.stderr, flush=True)
    return rows


def print_table(rows: list[tuple[str, str, list[Outcome]]], session: float, rounds: int) -> None:
    print(f"\nPartitions unserved after a fault (session timeout {session:g} s, {rounds} rounds, seconds)\n")
    print("| fault | membership | median | max | other member rebalanced |")
    print("|---|---|---|---|---|")
    for title, membership, outcomes in rows:
        seconds = [o.seconds for o in outcomes]
        flags = [o.rebalanced for o in outcomes if o.rebalanced is not None]
        rebalanced = f"{sum(flags)}/{len(flags)}" if flags else "-"
        print(f"| {title} | {membership} | {statistics.median(seconds):.2f} | {max(seconds):.2f} | {rebalanced} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--session", type=float, default=10.0, help="consumer session timeout, seconds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", help="a running broker (default: start a development broker)")
    args = parser.parse_args()
    if args.bootstrap:
        rows = asyncio.run(measure(args.bootstrap, args.session, args.rounds))
    else:
        with tempfile.TemporaryDirectory(prefix="stepline-recovery-") as tmp:
            server = DevInfra(REPO_ROOT / ".cache" / "infra").start_kafka(
                Path(tmp) / "kafka", port=free_port(), controller_port=free_port())
            try:
                rows = asyncio.run(measure(server.url, args.session, args.rounds))
            finally:
                server.stop()
    print_table(rows, args.session, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
