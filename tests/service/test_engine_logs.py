"""Node-run logs the engine writes itself (`source: "engine"`), through the HTTP API of an embedded
engine with a real loopback target: each attempt's start, the request it sent (no query-string
secret), the retry it leads to, a timeout, a callback wait, an approval requested and decided, a
cancellation; and `stepline logs` shows them beside the logs a PATCH sent."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from stepline.cli.render import log_lines
from tests.conftest import Target
from tests.service.test_embedded_runs import chain, create, node_runs, run_to_end, wait_run, webhook
from tests.service.test_run_control import start as start_run
from tests.service.test_run_control import waiting_hook
from tests.service.test_waiting_nodes import approval_workflow, decide, decision_path, start, until_waiting


def engine_lines(node_run: dict[str, Any]) -> list[str]:
    return [e["log"] for e in node_run["nodeRunLogs"] if e["source"] == "engine"]


async def test_a_retried_webhook_logs_attempts_requests_and_retries(api: httpx.AsyncClient, target: Target) -> None:
    url = f"{target.base_url}/flaky/2/deploy?token=s3cr3t-query-value"
    await create(api, chain("logged-retries", webhook("call", url, retry={
        "maxAttempts": 3, "initialIntervalSeconds": 0.01, "backoffCoefficient": 2})))
    run = await run_to_end(api, "logged-retries")
    assert run["result"] == "SUCCESS"
    first, second, third = node_runs(run, "call")
    shown = re.escape(f"{target.base_url}/flaky/2/deploy")
    assert engine_lines(first)[0] == "attempt 1 of 3 started"
    assert re.fullmatch(rf"request POST {shown} → HTTP 503 in \d+ ms", engine_lines(first)[1])
    assert engine_lines(first)[2] == (f"retry scheduled: attempt 2 of 3 in 0.01 s: POST {target.base_url}"
                                      "/flaky/2/deploy answered HTTP 503")
    assert engine_lines(second)[2].startswith("retry scheduled: attempt 3 of 3 in 0.02 s")
    assert engine_lines(third)[0] == "attempt 3 of 3 started"
    assert re.fullmatch(rf"request POST {shown} → HTTP 200 in \d+ ms", engine_lines(third)[1])
    assert len(engine_lines(third)) == 2, "no retry after the success"
    assert {e["logLevel"] for e in first["nodeRunLogs"]} == {"INFO", "WARN"}
    assert "s3cr3t-query-value" not in json.dumps(run)
    lines = log_lines(run)
    assert any(line.endswith("call[3] (engine): attempt 3 of 3 started") for line in lines), lines


async def test_an_attempt_that_times_out_says_so(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("logged-timeout", webhook("slow", f"{target.base_url}/slow/3000/x", timeoutSeconds=1)))
    run = await run_to_end(api, "logged-timeout")
    assert run["result"] == "FAILED"
    lines = engine_lines(node_runs(run, "slow")[0])
    assert lines[0] == "attempt 1 started"
    assert "timed out after 1 s" in lines or any("failed after" in line and "Timeout" in line for line in lines), lines


async def test_a_callback_wait_a_patch_and_the_users_logs(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("logged-callback", waiting_hook(target)))
    run = await start_run(api, "logged-callback")
    waiting = await until_waiting(api, run["identifier"], "hook")
    assert engine_lines(waiting)[-1] == "waiting for a callback (a PATCH of this node run)"
    assert engine_lines(waiting)[1].startswith(f"request POST {target.base_url}/async/hook → HTTP 202 in ")
    patched = await api.patch(f"/v1/workflows/nodes/runs/{waiting['identifier']}", json={
        "status": "COMPLETED", "result": "SUCCESS", "logs": [{"logLevel": "INFO", "log": "deployed"}]})
    assert patched.status_code == 200, patched.text
    done = await wait_run(api, run["identifier"])
    entries = node_runs(done, "hook")[0]["nodeRunLogs"]
    assert [(e["source"], e["log"]) for e in entries][-1] == ("user", "deployed")
    assert sum(e["source"] == "engine" for e in entries) == 3


async def test_approval_requested_and_decided(api: httpx.AsyncClient) -> None:
    await create(api, approval_workflow("logged-approval"))
    run_id = await start(api, "logged-approval")
    waiting = await until_waiting(api, run_id, "gate")
    assert engine_lines(waiting)[-1] == "approval requested from alice@example.com, bob@example.com"
    decided = await decide(api, decision_path(run_id), "bob@example.com", {"decision": "approve"})
    assert decided.status_code == 200, decided.text
    done = await wait_run(api, run_id)
    assert engine_lines(node_runs(done, "gate")[0])[-1] == "approved by bob@example.com"


async def test_a_cancelled_wait_is_logged(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("logged-cancel", waiting_hook(target)))
    run = await start_run(api, "logged-cancel")
    await until_waiting(api, run["identifier"], "hook")
    assert (await api.post(f"/v1/workflows/runs/{run['identifier']}/cancel")).status_code == 200
    done = await wait_run(api, run["identifier"])
    [hook] = node_runs(done, "hook")
    assert engine_lines(hook)[-1] == "cancelled by admin"
    assert [e["logLevel"] for e in hook["nodeRunLogs"]][-1] == "WARN"
