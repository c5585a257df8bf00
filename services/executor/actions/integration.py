"""INTEGRATION_ACTION: run an action of an outside integration. Provider `GITHUB` (or `github-ocean`)
dispatches a GitHub Actions workflow (services/executor/actions/github.py) with the token held in the
secret named by `tokenSecret`, or, for Port's nodes (which name an installed integration instead), in
the secret the executor's `github_token_secret` setting names (default `GITHUB_TOKEN`). Port's
`{org, repo, workflow, workflowInputs, reportWorkflowStatus}` and Stepline's shape are both accepted.

Any other provider is an Ocean integration that Stepline does not run: the node run waits (its output
the rendered invocation) and is queued for the integration workers of its `installationId`
(libs/store/integration_queue.py), which claim it through the API and complete it by PATCH.

Without `reportStatus` the output is `{dispatched, repo, workflowId, ref}`; with it, the node follows
the workflow run and its output is `{runId, htmlUrl, status, conclusion}` (FAILED unless the
conclusion is `success`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx

from libs.core.errors import ActionError, SteplineError
from libs.core.node_types import GITHUB_PROVIDERS
from libs.core.secrets import SecretReader
from libs.store import integration_queue
from libs.store.ports import EntryStore
from services.executor.actions.base import ActionInput, ActionResult
from services.executor.actions.github import Dispatch, GitHubApi, GitHubConfig, GitHubWorkflows
from services.executor.settings import ExecutorSettings

_TOKEN = re.compile(r"[\x21-\x7e]+")
WORKER_FIELDS = ("installationId", "integrationProvider", "integrationIdentifier", "integrationInvocationType",
                 "integrationActionExecutionProperties")
"""What a worker is handed (the node run's waiting output), rendered."""


class IntegrationAction:
    def __init__(self, client: httpx.AsyncClient, secrets: SecretReader, settings: ExecutorSettings, *,
                 store: EntryStore, clock: Callable[[], float] = time.time) -> None:
        """`clock` is wall-clock time: it is compared with GitHub's `created_at`."""
        self.client = client
        self.secrets = secrets
        self.store = store
        self.github = GitHubConfig(base_url=settings.github_api_url, poll_seconds=settings.github_poll_seconds,
                                   return_run_details=settings.github_return_run_details)
        self.clock = clock
        self.token_secret = settings.github_token_secret

    async def execute(self, data: ActionInput) -> ActionResult:
        cfg = data.config
        if cfg.get("integrationProvider") not in GITHUB_PROVIDERS:
            return await self._for_worker(data)
        dispatch = Dispatch.of(cfg.get("integrationActionExecutionProperties"))
        token = await self._token(cfg.get("tokenSecret") or self.token_secret)
        workflows = GitHubWorkflows(GitHubApi(self.client, self.github.base_url, token), self.github, clock=self.clock)
        return ActionResult(output=await workflows.run(dispatch))

    async def _for_worker(self, data: ActionInput) -> ActionResult:
        """Queue the node run for the workers of its installation; it waits for their PATCH."""
        installation = data.config.get("installationId")
        if not isinstance(installation, str) or not installation:
            raise ActionError("config.installationId must name the integration installation whose workers run it")
        await integration_queue.enqueue(self.store, installation, data.node_run_key, now=self.clock())
        invocation = {k: data.config.get(k) for k in WORKER_FIELDS if k in data.config}
        return ActionResult(output={**invocation, "pendingExecution": True}, waiting=True)

    async def _token(self, name: object) -> str:
        if not isinstance(name, str) or not name:
            raise ActionError("config.tokenSecret must name a secret")
        try:
            token = await self.secrets.reveal(name)
        except SteplineError as exc:
            raise ActionError(f"reading secret {name!r} failed: {exc.message}", retryable=exc.retryable) from None
        if token is None:
            raise ActionError(f"secret {name!r} (config.tokenSecret, or the executor's GitHub token secret) "
                              "does not exist")
        token = token.strip()
        if not _TOKEN.fullmatch(token):
            raise ActionError(f"secret {name!r} (config.tokenSecret) does not hold a usable token")
        return token
