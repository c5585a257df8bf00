"""The chaos test's load: runs of the five example shapes (tests/e2e/example_runs.py: a condition, a
fan-out with a fan-in, a chain, retries, an asynchronous webhook completed by PATCH), each started
with its own idempotency key and retried until the API accepts it, approvals answered as they
arrive, and every run awaited once the load is over.

The retries run against the target's `/flaky/<n>/…` paths: the first one or two requests of each
run's path answer 503 (retryable), so the node succeeds on its second or third of three attempts,
and about one request in five the target receives fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from tests.conftest import Target
from tests.e2e import example_runs
from tests.e2e.example_runs import APPROVAL_PATH, Planned, Run

RETRYABLE = frozenset({429, 500, 502, 503, 504})
"""Start / PATCH answers that mean "try again" (the store or the broker is away, or a service is)."""


@dataclass
class Tracked:
    """One planned run: when it was first asked for, what the API answered, how it ended."""

    planned: Planned
    key: str
    """The start request's Idempotency-Key: a retried start never makes a second run."""
    phase: str
    sent_at: float = 0.0
    """Wall-clock time of the first start request (the latency counts from here)."""
    answered: int = 0
    """The start's answer: 201 (stored), 202 (not stored within the accept timeout), 200 (a repeat)."""
    run_id: str = ""
    confirmed: bool = False
    """For a start answered 202: a later start with its key named the stored run."""
    run: Run | None = None

    @property
    def completed(self) -> bool:
        return self.run is not None and self.run["status"] == "COMPLETED"


def flaky_retry(i: int, base_url: str) -> Planned:
    """retry-and-recover against `/flaky/<1 or 2>/chaos-<i>`: it must succeed on a later attempt."""
    failures = 1 + (i // len(MAKERS)) % 2
    return replace(example_runs.retry_and_recover(0, base_url), inputs={"url": f"{base_url}/flaky/{failures}/chaos-{i}"})


MAKERS: list[Callable[[int, str], Planned]] = [
    lambda i, _: example_runs.deploy(i, "production"), lambda i, _: example_runs.deploy(i, "staging"),
    lambda i, _: example_runs.fan_out(i), lambda i, _: example_runs.hello(i), flaky_retry,
    lambda i, _: example_runs.approval(i)]


def plan(phase: str, first: int, count: int, base_url: str) -> list[Tracked]:
    """`count` runs numbered from `first` (numbers are unique across phases: the approval's change
    name and the flaky path are per run), the shapes in rotation."""
    return [Tracked(MAKERS[i % len(MAKERS)](i, base_url), f"chaos-{i}", phase) for i in range(first, first + count)]


async def post_start(client: httpx.AsyncClient, t: Tracked) -> httpx.Response | None:
    """One start request; None when the trigger did not answer (killed, or restarting)."""
    try:
        return await client.post(f"/v1/workflows/{t.planned.workflow}/runs", json={"inputs": t.planned.inputs},
                                 headers={"Idempotency-Key": t.key})
    except httpx.TransportError:
        return None


async def start(client: httpx.AsyncClient, t: Tracked, within: float) -> None:
    """Ask for the run until the API accepts it; AssertionError on a refusal or after `within` s."""
    t.sent_at = time.time()
    deadline = time.monotonic() + within
    while True:
        answer = await post_start(client, t)
        if answer is not None and answer.status_code in (200, 201, 202):
            t.answered, t.run_id = answer.status_code, answer.json()["workflowRun"]["identifier"]
            return
        if answer is not None and answer.status_code not in RETRYABLE:
            raise AssertionError(f"start {t.key} refused: {answer.status_code} {answer.text}")
        assert time.monotonic() < deadline, f"start {t.key} not accepted within {within:.0f} s"
        await asyncio.sleep(0.3)


async def start_paced(client: httpx.AsyncClient, runs: list[Tracked], pace: float, within: float) -> None:
    """Start one run every `pace` seconds (each retried on its own, so a slow start delays none)."""
    tasks = []
    try:
        for t in runs:
            tasks.append(asyncio.create_task(start(client, t, within)))
            await asyncio.sleep(pace)
        await asyncio.gather(*tasks)
    finally:
        await stopped(*tasks)


async def stopped(*tasks: asyncio.Task[None]) -> None:
    """Cancel the tasks that still run, wait until they are gone, and raise the first one's error
    (a task that failed before it was cancelled, such as an approver that died)."""
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, Exception):
            raise result


@dataclass
class Approver:
    """Answers every approval request the target receives, as the approving service would: a PATCH
    of the waiting node run (retried while the API is away; once per node run, however often the
    request was re-sent)."""

    client: httpx.AsyncClient
    target: Target
    outputs: dict[str, dict[str, Any]]
    """The PATCH output per change name (the request's X-Change header)."""
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    seen: int = 0
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per node run id: (wall-clock time its request was first seen, time its PATCH was taken)."""
    seen_at: dict[str, float] = field(default_factory=dict)

    async def run(self) -> None:
        while True:
            self.collect()
            for node_run_id, output in list(self.pending.items()):
                if await self.patch(node_run_id, output):
                    del self.pending[node_run_id]
                    self.done.add(node_run_id)
                    self.timings[node_run_id] = (self.seen_at[node_run_id], time.time())
            await asyncio.sleep(0.2)

    def collect(self) -> None:
        new, self.seen = self.target.requests[self.seen:], len(self.target.requests)
        for r in new:
            node_run_id = r["headers"].get("x-stepline-node-run-id", "")
            if r["path"] == APPROVAL_PATH and node_run_id not in self.done:
                self.pending[node_run_id] = self.outputs[r["headers"]["x-change"]]
                self.seen_at.setdefault(node_run_id, time.time())

    async def patch(self, node_run_id: str, output: dict[str, Any]) -> bool:
        """True once the API took the completion (or refused it for good: noted in `refused`)."""
        body = {"status": "COMPLETED", "result": "SUCCESS", "output": output}
        try:
            answer = await self.client.patch(f"/v1/workflows/nodes/runs/{node_run_id}", json=body)
        except httpx.TransportError:
            return False
        if answer.status_code in RETRYABLE:
            return False
        if answer.status_code != 200:
            self.refused.append(f"{node_run_id}: {answer.status_code} {answer.text}")
        return True


def approver(client: httpx.AsyncClient, target: Target, runs: list[Tracked]) -> Approver:
    outputs = {t.planned.inputs["change"]: t.planned.approval for t in runs if t.planned.approval is not None}
    return Approver(client, target, outputs)


async def fetch(client: httpx.AsyncClient, run_id: str) -> Run | None:
    """The run as the API shows it now; None while it cannot say (away, or not stored yet)."""
    try:
        answer = await client.get(f"/v1/workflows/runs/{run_id}")
    except httpx.TransportError:
        return None
    run: Run | None = answer.json()["workflowRun"] if answer.status_code == 200 else None
    return run


async def confirm(client: httpx.AsyncClient, t: Tracked) -> None:
    """For a start answered 202: ask again with its key until the API names the stored run. (The
    first request's StartRun may have won over the one answered 202, whose id is then never stored.)"""
    answer = await post_start(client, t)
    if answer is not None and answer.status_code in (200, 201):
        t.confirmed, t.run_id = True, answer.json()["workflowRun"]["identifier"]


async def settle(client: httpx.AsyncClient, runs: list[Tracked], within: float,
                 alive: Callable[[], None]) -> None:
    """Poll until every run is COMPLETED or `within` seconds passed (those left are stuck); then read
    every run once more, so that each is judged by its final record."""
    deadline = time.monotonic() + within
    pending = list(runs)
    while pending and time.monotonic() < deadline:
        alive()
        await asyncio.gather(*(confirm(client, t) for t in pending if t.answered == 202 and not t.confirmed))
        for t in pending:
            t.run = await fetch(client, t.run_id) or t.run
        pending = [t for t in pending if not t.completed]
        await asyncio.sleep(0.5 if pending else 0)
    for t in runs:
        t.run = await fetch(client, t.run_id) or t.run
