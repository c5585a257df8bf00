"""INTEGRATION_ACTION (GitHub) in an embedded engine against a fake GitHub REST API on loopback: the
dispatch request, following the run to its conclusion, a bad token, a missing secret, and configs
rejected at validation. The token lives in the engine's encrypted secret vault."""

from __future__ import annotations

import base64
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from libs.secrets.vault import open_vault
from tests.conftest import serving
from tests.service.test_embedded_runs import chain, create, node_runs, run_to_end

TOKEN = "ghp_test0123456789abcdefTOKEN"
REVOKED = "ghp_revoked9876543210zyxREVOKED"


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeGitHub:
    """The Actions endpoints a dispatch uses. A dispatched run is `queued`, then `in_progress`, then
    `completed` with `conclusion`: each GET of the run answers its state, then moves it on a step."""

    base_url: str = ""
    conclusion: str = "success"
    run_details: bool = True
    """Answer `return_run_details` with 200 and the run id; otherwise 204 as older servers do."""
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    polls: dict[int, int] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(9001))

    def __post_init__(self) -> None:
        # An older dispatch of the same workflow and branch: finding the new run must skip it.
        self.runs[42] = self._run(42, time.time() - 3600, "completed", "failure")

    def _run(self, run_id: int, created: float, status: str, conclusion: str | None) -> dict[str, Any]:
        return {"id": run_id, "created_at": iso(created), "status": status, "conclusion": conclusion,
                "event": "workflow_dispatch", "head_branch": "main",
                "html_url": f"https://github.example/acme/web/actions/runs/{run_id}"}

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches")
        async def dispatch(owner: str, repo: str, workflow: str, request: Request) -> Response:
            body = await request.json()
            self.dispatches.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return JSONResponse({"message": "Bad credentials", "status": "401"}, status_code=401)
            if workflow != "deploy.yml":
                return JSONResponse({"message": "Not Found", "status": "404"}, status_code=404)
            run_id = next(self.ids)
            self.runs[run_id] = self._run(run_id, time.time(), "queued", None)
            if body.get("return_run_details") and self.run_details:
                return JSONResponse({"workflow_run_id": run_id, "html_url": self.runs[run_id]["html_url"]})
            return Response(status_code=204)

        @app.get("/repos/{owner}/{repo}/actions/workflows/{workflow}/runs")
        async def list_runs(owner: str, repo: str, workflow: str, event: str, branch: str) -> JSONResponse:
            assert (event, branch) == ("workflow_dispatch", "main")
            newest_first = sorted(self.runs.values(), key=lambda r: r["id"], reverse=True)
            return JSONResponse({"total_count": len(newest_first), "workflow_runs": newest_first})

        @app.get("/repos/{owner}/{repo}/actions/runs/{run_id}")
        async def get_run(owner: str, repo: str, run_id: int) -> JSONResponse:
            run = self.runs[run_id]
            self.polls[run_id] = self.polls.get(run_id, 0) + 1
            answer = dict(run)
            if run["status"] == "queued":
                run["status"] = "in_progress"
            elif run["status"] == "in_progress":
                run.update(status="completed", conclusion=self.conclusion)
            return JSONResponse(answer)

        return app


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    fake = FakeGitHub()
    async with serving(fake.app()) as base_url:
        fake.base_url = base_url
        yield fake


@pytest.fixture
async def engine(tmp_path: Path, github: FakeGitHub) -> AsyncIterator[Any]:
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    key = base64.b64encode(os.urandom(32)).decode()
    eng = Engine(EmbeddedSettings(data_dir=tmp_path / "data", stale_seconds=1.0, sweep_interval_seconds=0.2,
                                  lease_seconds=5.0, partitions=4, secrets_key=key,
                                  github_api_url=github.base_url, github_poll_seconds=0.05))
    await eng.start()
    vault = open_vault(eng.store, key)
    assert vault is not None
    await vault.put("gh-token", TOKEN, now=time.time())
    await vault.put("gh-revoked", REVOKED, now=time.time())
    yield eng
    await eng.stop()


def dispatch_node(properties: dict[str, Any], token_secret: str = "gh-token", **node: Any) -> dict[str, Any]:
    config = {"type": "INTEGRATION_ACTION", "integrationProvider": "GITHUB",
              "integrationActionExecutionProperties": {"repo": "acme/web", "workflowId": "deploy.yml", **properties},
              "tokenSecret": token_secret}
    return {"identifier": "deploy", "config": config, **node}


def with_version_input(definition: dict[str, Any]) -> dict[str, Any]:
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"version": {"type": "string"}}}
    return definition


def leaks(run: dict[str, Any]) -> bool:
    text = json.dumps(run)
    return TOKEN in text or REVOKED in text


async def test_dispatch_without_report_status(api: httpx.AsyncClient, github: FakeGitHub) -> None:
    node = dispatch_node({"inputs": {"version": "{{ .inputs.version }}"}})
    await create(api, with_version_input(chain("gh-dispatch", node)))
    run = await run_to_end(api, "gh-dispatch", {"version": "1.2.3"})
    assert run["result"] == "SUCCESS", run
    [request] = github.dispatches
    assert request["path"] == "/repos/acme/web/actions/workflows/deploy.yml/dispatches"
    assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["accept"] == "application/vnd.github+json"
    assert request["headers"]["x-github-api-version"] == "2022-11-28"
    assert request["body"] == {"ref": "main", "inputs": {"version": "1.2.3"}}
    assert run["variables"]["outputs"]["deploy"] == {"dispatched": True, "repo": "acme/web",
                                                     "workflowId": "deploy.yml", "ref": "main"}
    assert github.polls == {}
    assert not leaks(run)


async def test_report_status_follows_the_run_to_success(api: httpx.AsyncClient, github: FakeGitHub) -> None:
    node = dispatch_node({"ref": "main", "inputs": {}, "reportStatus": True}, timeoutSeconds=30)
    await create(api, chain("gh-follow", node))
    run = await run_to_end(api, "gh-follow")
    assert run["result"] == "SUCCESS", run
    assert github.dispatches[0]["body"] == {"ref": "main", "inputs": {}, "return_run_details": True}
    assert run["variables"]["outputs"]["deploy"] == {
        "runId": 9001, "htmlUrl": "https://github.example/acme/web/actions/runs/9001",
        "status": "completed", "conclusion": "success"}
    assert github.polls[9001] == 3, "queued, in_progress, completed"
    assert not leaks(run)


async def test_a_run_found_by_listing_that_fails_fails_the_node(api: httpx.AsyncClient, github: FakeGitHub) -> None:
    github.run_details, github.conclusion = False, "failure"
    node = dispatch_node({"reportStatus": True}, retry={"maxAttempts": 3, "initialIntervalSeconds": 0.01},
                         timeoutSeconds=30)
    await create(api, chain("gh-failure", node))
    run = await run_to_end(api, "gh-failure")
    assert run["result"] == "FAILED"
    attempts = node_runs(run, "deploy")
    assert len(attempts) == 1, "a concluded workflow run is not dispatched again"
    assert "concluded failure" in attempts[0]["error"]
    assert attempts[0]["output"] == {"runId": 9001, "htmlUrl": "https://github.example/acme/web/actions/runs/9001",
                                     "status": "completed", "conclusion": "failure"}
    assert 42 not in github.polls, "the older run of the workflow is not the one dispatched"
    assert len(github.dispatches) == 1


async def test_a_bad_token_fails_without_retries_or_leaks(api: httpx.AsyncClient, github: FakeGitHub) -> None:
    node = dispatch_node({}, token_secret="gh-revoked", retry={"maxAttempts": 3, "initialIntervalSeconds": 0.01})
    await create(api, chain("gh-401", node))
    run = await run_to_end(api, "gh-401")
    assert run["result"] == "FAILED"
    attempts = node_runs(run, "deploy")
    assert len(attempts) == 1
    assert "HTTP 401" in attempts[0]["error"] and "Bad credentials" in attempts[0]["error"]
    assert github.dispatches[0]["headers"]["authorization"] == f"Bearer {REVOKED}"
    assert not leaks(run)


async def test_an_unknown_workflow_is_githubs_404(api: httpx.AsyncClient, github: FakeGitHub) -> None:
    await create(api, chain("gh-404", dispatch_node({"workflowId": "nope.yml"})))
    run = await run_to_end(api, "gh-404")
    assert run["result"] == "FAILED"
    assert "HTTP 404" in run["error"] and "Not Found" in run["error"]


async def test_a_missing_secret_fails_naming_it(api: httpx.AsyncClient, github: FakeGitHub) -> None:
    await create(api, chain("gh-no-secret", dispatch_node({}, token_secret="gh-missing")))
    run = await run_to_end(api, "gh-no-secret")
    assert run["result"] == "FAILED"
    assert "gh-missing" in node_runs(run, "deploy")[0]["error"]
    assert github.dispatches == []


@pytest.mark.parametrize(("change", "pointer"), [
    ({"integrationProvider": "GITLAB"}, "/nodes/1/config/installationId"),  # an Ocean provider: its workers
    ({"integrationActionExecutionProperties": {"workflowId": "deploy.yml"}},
     "/nodes/1/config/integrationActionExecutionProperties/repo"),
    ({"integrationActionExecutionProperties": {"repo": "not-a-repo", "workflowId": "deploy.yml"}},
     "/nodes/1/config/integrationActionExecutionProperties/repo"),
    ({"tokenSecret": ""}, "/nodes/1/config/tokenSecret"),  # optional (default: the configured token secret)
])
async def test_bad_configs_are_rejected_at_validation(api: httpx.AsyncClient, change: dict[str, Any],
                                                      pointer: str) -> None:
    node = dispatch_node({})
    node["config"].update(change)
    node["config"] = {k: v for k, v in node["config"].items() if v is not None}
    response = await api.post("/v1/workflows", json=chain("gh-bad", node))
    assert response.status_code == 422, response.text
    assert pointer in [d["pointer"] for d in response.json()["details"]], response.text
