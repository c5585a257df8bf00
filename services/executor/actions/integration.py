"""INTEGRATION_ACTION: run an action of an outside integration. Provider `GITHUB` dispatches a GitHub
Actions workflow (services/executor/actions/github.py) with the token held in the secret named by
`tokenSecret`.

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
from libs.core.secrets import SecretReader
from services.executor.actions.base import ActionInput, ActionResult
from services.executor.actions.github import Dispatch, GitHubApi, GitHubConfig, GitHubWorkflows
from services.executor.settings import ExecutorSettings

PROVIDERS = ("GITHUB",)
_TOKEN = re.compile(r"[\x21-\x7e]+")


class IntegrationAction:
    def __init__(self, client: httpx.AsyncClient, secrets: SecretReader, settings: ExecutorSettings, *,
                 clock: Callable[[], float] = time.time) -> None:
        """`clock` is wall-clock time: it is compared with GitHub's `created_at`."""
        self.client = client
        self.secrets = secrets
        self.github = GitHubConfig(base_url=settings.github_api_url, poll_seconds=settings.github_poll_seconds,
                                   return_run_details=settings.github_return_run_details)
        self.clock = clock

    async def execute(self, data: ActionInput) -> ActionResult:
        cfg = data.config
        provider = cfg.get("integrationProvider")
        if provider not in PROVIDERS:
            raise ActionError(f"config.integrationProvider {provider!r} is not supported; supported: "
                              + ", ".join(PROVIDERS))
        dispatch = Dispatch.of(cfg.get("integrationActionExecutionProperties"))
        token = await self._token(cfg.get("tokenSecret"))
        workflows = GitHubWorkflows(GitHubApi(self.client, self.github.base_url, token), self.github, clock=self.clock)
        return ActionResult(output=await workflows.run(dispatch))

    async def _token(self, name: object) -> str:
        if not isinstance(name, str) or not name:
            raise ActionError("config.tokenSecret must name a secret")
        try:
            token = await self.secrets.reveal(name)
        except SteplineError as exc:
            raise ActionError(f"reading secret {name!r} failed: {exc.message}", retryable=exc.retryable) from None
        if token is None:
            raise ActionError(f"secret {name!r} (config.tokenSecret) does not exist")
        token = token.strip()
        if not _TOKEN.fullmatch(token):
            raise ActionError(f"secret {name!r} (config.tokenSecret) does not hold a usable token")
        return token
