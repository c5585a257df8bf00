"""The example workflows (`examples/*.json`) as a load: which runs to start, and what each must end as.

Every URL of an example that calls the engine's own API (`{{ .run.apiUrl }}`) points at the test's
`Target` server instead. Each planned run carries its inputs and a check of its finished state, so a test can start
hundreds of runs of five different shapes (a condition with two branches, a fan-out with a fan-in,
a chain, a webhook with an error branch, an asynchronous webhook completed by a PATCH) and verify
every single result, not just that the runs ended.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Target

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENGINE_URL = "{{ .run.apiUrl }}"
"""How the examples reach the engine's own API (`.run.apiUrl`, whatever port it listens on)."""
APPROVAL_PATH = "/async/approval"

Run = dict[str, Any]


def example(name: str, base_url: str) -> dict[str, Any]:
    """An example definition with its engine URLs pointed at `base_url` (the approval request at
    `/async/approval`, which answers 202 like a real asynchronous service)."""
    text = (EXAMPLES / f"{name}.json").read_text()
    if name == "async-approval-webhook":
        text = text.replace(f"{ENGINE_URL}/healthz", base_url + APPROVAL_PATH)
    definition: dict[str, Any] = json.loads(text.replace(ENGINE_URL, base_url))
    return definition


@dataclass(frozen=True)
class Planned:
    workflow: str
    inputs: dict[str, Any]
    check: Callable[[Run], None]
    executed: frozenset[str]
    """The nodes that must have exactly one COMPLETED node run (the trigger included)."""
    approval: dict[str, Any] | None = None
    """For the asynchronous example: the output the test PATCHes into its waiting node."""


def _outputs(run: Run) -> dict[str, Any]:
    outputs: dict[str, Any] = run["variables"]["outputs"]
    return outputs


def deploy(i: int, environment: str) -> Planned:
    service, version = f"svc-{i}", f"1.{i}.0"
    taken = "deploy-prod" if environment == "production" else "deploy-nonprod"
    skipped = "deploy-nonprod" if environment == "production" else "deploy-prod"
    option = "production" if environment == "production" else "non-production"

    def check(run: Run) -> None:
        out = _outputs(run)
        assert out["check-env"] == {"selectedOption": option}
        assert out[taken]["response"]["status"] == 200
        assert out[taken]["response"]["data"]["method"] == "GET"
        assert run["nodes"][skipped]["state"] == "SKIPPED"
        assert out["update-status"] == {"deployed": True, "status": 200}

    return Planned("deploy-service", {"service": service, "version": version, "environment": environment},
                   check, frozenset({"trigger", "check-env", taken, "update-status"}))


def fan_out(i: int) -> Planned:
    amount, coupon = 10 * (i % 12), ("SAVE10" if i % 3 == 0 else "NONE")
    tax, shipping, discount = amount * 0.2, (0 if amount >= 50 else 5), (amount * 0.1 if coupon == "SAVE10" else 0)

    def check(run: Run) -> None:
        total = _outputs(run)["total"]
        assert total["amount"] == amount
        assert total["tax"] == pytest.approx(tax)
        assert total["shipping"] == shipping
        assert total["discount"] == pytest.approx(discount)
        assert total["total"] == pytest.approx(amount + tax + shipping - discount)

    return Planned("fan-out", {"amount": amount, "coupon": coupon}, check,
                   frozenset({"trigger", "tax", "shipping", "discount", "total"}))


def hello(i: int) -> Planned:
    def check(run: Run) -> None:
        assert _outputs(run)["greet"] == {"greeting": f"Hello, person {i}"}

    return Planned("hello-transform", {"name": f"person {i}"}, check, frozenset({"trigger", "greet", "done"}))


def retry_and_recover(i: int, base_url: str) -> Planned:
    if i % 2:
        def recovered(run: Run) -> None:
            out = _outputs(run)
            assert out["report-failure"]["recovered"] is True
            assert out["report-failure"]["status"] == 404
            assert run["nodes"]["use-response"]["state"] == "SKIPPED"

        return Planned("retry-and-recover", {"url": f"{base_url}/status/404"}, recovered,
                       frozenset({"trigger", "call-service", "report-failure"}))

    def succeeded(run: Run) -> None:
        assert _outputs(run)["use-response"] == {"status": 200}
        assert run["nodes"]["report-failure"]["state"] == "SKIPPED"

    return Planned("retry-and-recover", {"url": f"{base_url}/ok/{i}"}, succeeded,
                   frozenset({"trigger", "call-service", "use-response"}))


def approval(i: int) -> Planned:
    change = f"change-{i}"
    if i % 2:
        def rejected(run: Run) -> None:
            assert _outputs(run)["record-rejection"] == {"rejected": change, "reason": f"no {i}"}

        return Planned("async-approval-webhook", {"change": change}, rejected,
                       frozenset({"trigger", "request-approval", "decide", "record-rejection"}),
                       approval={"approved": False, "reason": f"no {i}"})

    def applied(run: Run) -> None:
        assert _outputs(run)["apply-change"] == {"applied": change, "approvedBy": f"approver-{i}"}

    return Planned("async-approval-webhook", {"change": change}, applied,
                   frozenset({"trigger", "request-approval", "decide", "apply-change"}),
                   approval={"approved": True, "by": f"approver-{i}"})


WORKFLOWS = ("deploy-service", "fan-out", "hello-transform", "retry-and-recover", "async-approval-webhook")


def plan(total: int, base_url: str) -> list[Planned]:
    """`total` runs over the five examples, in rotation (so every shape is in flight at once)."""
    makers: list[Callable[[int], Planned]] = [
        lambda i: deploy(i, "production"), lambda i: deploy(i, "staging"), fan_out, hello,
        lambda i: retry_and_recover(i, base_url), approval]
    return [makers[i % len(makers)](i) for i in range(total)]


async def create_examples(client: httpx.AsyncClient, base_url: str) -> None:
    for name in WORKFLOWS:
        created = await client.post("/v1/workflows", json=example(name, base_url))
        assert created.status_code == 201, created.text


async def start(client: httpx.AsyncClient, planned: list[Planned]) -> list[str]:
    answers = await asyncio.gather(*(client.post(f"/v1/workflows/{p.workflow}/runs", json={"inputs": p.inputs})
                                     for p in planned))
    assert all(a.status_code in (201, 202) for a in answers), [a.text for a in answers if a.status_code >= 300]
    return [a.json()["workflowRun"]["identifier"] for a in answers]


async def approve_all(client: httpx.AsyncClient, target: Target, planned: list[Planned],
                      run_ids: list[str]) -> None:
    """Answer each approval request, as the approving service would: PATCH the waiting node run."""
    pending = {run_id: p.approval for p, run_id in zip(planned, run_ids, strict=True) if p.approval is not None}
    await target.wait_for(APPROVAL_PATH, count=len(pending), timeout=120)
    for request in [r for r in target.requests if r["path"] == APPROVAL_PATH]:
        output = pending.pop(request["headers"]["x-stepline-run-id"])
        body = {"status": "COMPLETED", "result": "SUCCESS", "output": output}
        done = await client.patch(f"/v1/workflows/nodes/runs/{request['headers']['x-stepline-node-run-id']}", json=body)
        assert done.status_code == 200, done.text
    assert not pending, "every approval request arrived once"


def verify(planned: list[Planned], runs: list[Run]) -> dict[str, int]:
    """Assert every run's result and outputs, and that each executed node completed exactly once;
    the started / completed / lost / completed-twice report."""
    completions: Counter[tuple[str, str]] = Counter()
    unfinished: list[str] = []
    for run in runs:
        for node_run in run["nodeRuns"]:
            if node_run["status"] == "COMPLETED":
                completions[(run["identifier"], node_run["node"]["identifier"])] += 1
            else:
                unfinished.append(f"{run['identifier']}/{node_run['node']['identifier']}: {node_run['status']}")
    report = {"started": len(runs), "completed": sum(r["status"] == "COMPLETED" for r in runs),
              "lost": sum(r["status"] != "COMPLETED" for r in runs),
              "completed_twice": sum(1 for n in completions.values() if n > 1)}
    assert (report["completed"], report["lost"], report["completed_twice"]) == (len(runs), 0, 0), report
    assert not unfinished, f"node runs of completed runs that are not COMPLETED: {unfinished[:10]}"
    for p, run in zip(planned, runs, strict=True):
        assert (run["result"], run["workflow"]["identifier"]) == ("SUCCESS", p.workflow), (run["identifier"], run["result"])
        assert {node for (rid, node) in completions if rid == run["identifier"]} == p.executed, run["identifier"]
        p.check(run)
    return report
