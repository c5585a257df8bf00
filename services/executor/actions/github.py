"""GitHub Actions through the REST API: dispatch a workflow, and with `reportStatus` follow the run
it created until it completes.

Finding the run: the dispatch asks for it (`return_run_details`, GitHub since 2026-02) and uses the
`workflow_run_id` of the answer. A server that answers 204 without it is asked for the workflow's
`workflow_dispatch` runs on `ref`, and the newest created no earlier than the dispatch (less
`SKEW_SECONDS`) is taken; two dispatches of one workflow and ref within that window could then pick
the same run.

Failures: 401, 403 (other than rate limiting), 404 and 422 are not retryable and carry GitHub's
`message`; 5xx, 429, rate limiting and network errors are. Once dispatched, polling rides out
transient errors (a retry would dispatch again); the node's `timeoutSeconds` bounds the wait. The
token goes into the Authorization header only: never into outputs, errors or logs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from libs.core.errors import ActionError
from services.executor.actions import bounded_http

log = logging.getLogger("stepline.executor.github")

API_VERSION = "2022-11-28"
SKEW_SECONDS = 10.0
REQUEST_TIMEOUT = 30.0
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Dispatch:
    """A workflow dispatch, from the rendered `integrationActionExecutionProperties`."""

    repo: str
    workflow_id: str
    ref: str = "main"
    inputs: dict[str, Any] = field(default_factory=dict)
    report_status: bool = False

    @classmethod
    def of(cls, props: Any) -> Dispatch:
        where = "config.integrationActionExecutionProperties"
        if not isinstance(props, dict):
            raise ActionError(f"{where} must be an object")
        props = stepline_shape(props)
        repo, workflow_id, ref = props.get("repo"), props.get("workflowId"), props.get("ref") or "main"
        inputs = props.get("inputs") or {}
        if not isinstance(repo, str) or not _REPO.fullmatch(repo) or any(p in (".", "..") for p in repo.split("/")):
            raise ActionError(f"{where}.repo must be owner/name, got {str(repo)[:80]!r}")
        if isinstance(workflow_id, bool) or not isinstance(workflow_id, (str, int)) or workflow_id in ("", ".", ".."):
            raise ActionError(f"{where}.workflowId must be a workflow file name or id")
        if not isinstance(ref, str):
            raise ActionError(f"{where}.ref must be a branch or tag name")
        if not isinstance(inputs, dict):
            raise ActionError(f"{where}.inputs must be an object")
        return cls(repo, str(workflow_id), ref, inputs, props.get("reportStatus") is True)

    @property
    def repo_path(self) -> str:
        """`/repos/{owner}/{name}`, each segment URL-encoded (never `.` or `..`, see `of`)."""
        owner, name = self.repo.split("/")
        return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"

    @property
    def workflow_path(self) -> str:
        return f"{self.repo_path}/actions/workflows/{quote(self.workflow_id, safe='')}"


def stepline_shape(props: dict[str, Any]) -> dict[str, Any]:
    """Port's `{org, repo, workflow, workflowInputs, reportWorkflowStatus}` as Stepline's
    `{repo: org/repo, workflowId, inputs, reportStatus}`; Stepline's shape is returned as it is."""
    if "workflow" not in props or "workflowId" in props:
        return props
    repo = props.get("repo")
    org = props.get("org")
    return {"repo": f"{org}/{repo}" if isinstance(org, str) and isinstance(repo, str) else repo,
            "workflowId": props.get("workflow"), "ref": props.get("ref"),
            "inputs": props.get("workflowInputs"), "reportStatus": props.get("reportWorkflowStatus")}


@dataclass(frozen=True)
class GitHubConfig:
    base_url: str
    poll_seconds: float
    return_run_details: bool


class GitHubApi:
    """Authenticated calls to one GitHub REST API base; statuses are turned into ActionErrors."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, token: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                        "X-GitHub-Api-Version": API_VERSION}

    async def call(self, method: str, path: str, *, json: Any = None,
                   params: dict[str, str] | None = None) -> httpx.Response:
        what = f"{method} {path}"
        try:
            response = await bounded_http.observed(method, self.base_url + path, lambda: self.client.request(
                method, self.base_url + path, json=json, params=params, headers=self.headers,
                timeout=REQUEST_TIMEOUT), lambda answer: answer.status_code)
        except httpx.TimeoutException:
            raise ActionError(f"GitHub {what} timed out", retryable=True) from None
        except httpx.HTTPError as exc:
            raise ActionError(f"GitHub {what} failed: {type(exc).__name__}", retryable=True) from None
        if response.status_code >= 300:
            raise ActionError(f"GitHub answered HTTP {response.status_code} to {what}: {_message(response)}",
                              retryable=_retryable(response))
        return response

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        data = (await self.call("GET", path, params=params)).json()
        if not isinstance(data, dict):
            raise ActionError(f"GitHub GET {path} answered something other than an object", retryable=True)
        return data


class GitHubWorkflows:
    def __init__(self, api: GitHubApi, config: GitHubConfig, *, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.api = api
        self.config = config
        self.clock = clock
        self.sleep = sleep

    async def run(self, dispatch: Dispatch) -> dict[str, Any]:
        """Dispatch; with `report_status`, wait for the run's conclusion (ActionError unless success)."""
        since = self.clock()
        run_id = await self.dispatch(dispatch)
        log.info("dispatched GitHub workflow %s of %s on %s", dispatch.workflow_id, dispatch.repo, dispatch.ref)
        if not dispatch.report_status:
            return {"dispatched": True, "repo": dispatch.repo, "workflowId": dispatch.workflow_id, "ref": dispatch.ref}
        if run_id is None:
            run_id = await self.find_run(dispatch, since)
        run = await self.watch(dispatch, run_id)
        output = {"runId": run_id, "htmlUrl": run.get("html_url"), "status": run.get("status"),
                  "conclusion": run.get("conclusion")}
        if run.get("conclusion") != "success":
            raise ActionError(f"GitHub workflow run {run_id} of {dispatch.repo} concluded {run.get('conclusion')}",
                              output=output)
        return output

    async def dispatch(self, dispatch: Dispatch) -> int | None:
        body: dict[str, Any] = {"ref": dispatch.ref, "inputs": dispatch.inputs}
        if dispatch.report_status and self.config.return_run_details:
            body["return_run_details"] = True
        response = await self.api.call("POST", dispatch.workflow_path + "/dispatches", json=body)
        if response.status_code != 200 or not response.content:
            return None
        try:
            run_id = response.json().get("workflow_run_id")
        except (ValueError, AttributeError):
            return None
        return run_id if isinstance(run_id, int) and not isinstance(run_id, bool) else None

    async def find_run(self, dispatch: Dispatch, since: float) -> int:
        params = {"event": "workflow_dispatch", "branch": dispatch.ref, "per_page": "20"}
        while True:
            listing = await self._transient_ok(self.api.get_json(dispatch.workflow_path + "/runs", params))
            newest = _newest(listing.get("workflow_runs") if listing else None, since - SKEW_SECONDS)
            if newest is not None:
                return newest
            await self.sleep(self.config.poll_seconds)

    async def watch(self, dispatch: Dispatch, run_id: int) -> dict[str, Any]:
        while True:
            run = await self._transient_ok(self.api.get_json(f"{dispatch.repo_path}/actions/runs/{int(run_id)}"))
            if run is not None and run.get("status") == "completed":
                return run
            await self.sleep(self.config.poll_seconds)

    async def _transient_ok(self, call: Awaitable[dict[str, Any]]) -> dict[str, Any] | None:
        """The answer, or None after a retryable failure (the caller polls again)."""
        try:
            return await call
        except ActionError as exc:
            if not exc.retryable:
                raise
            log.warning("polling GitHub: %s; trying again", exc.message)
            return None


def _newest(runs: Any, not_before: float) -> int | None:
    best: tuple[float, int] | None = None
    for run in runs if isinstance(runs, list) else []:
        created, run_id = _timestamp(run.get("created_at")), run.get("id")
        if created is None or not isinstance(run_id, int) or created < not_before:
            continue
        if best is None or (created, run_id) > best:
            best = (created, run_id)
    return best[1] if best else None


def _timestamp(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _retryable(response: httpx.Response) -> bool:
    if response.status_code == 403:
        return response.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in response.headers
    return response.status_code >= 500 or response.status_code == 429


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    text = body.get("message") if isinstance(body, dict) else None
    if not isinstance(text, str):
        text = response.text
    return " ".join(text.split())[:300] or response.reason_phrase
