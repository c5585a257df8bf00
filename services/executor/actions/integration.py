"""INTEGRATION_ACTION: run an action of an outside integration. Provider `GITHUB` (or `github-ocean`)
dispatches a GitHub Actions workflow (services/executor/actions/github.py) with the token held in the
secret named by `tokenSecret`, or, for Port's nodes (which name an installed integration instead), in
the secret the executor's `github_token_secret` setting names (default `GITHUB_TOKEN`). Port's
`{org, repo, workflow, workflowInputs, reportWorkflowStatus}` and Stepline's shape are both accepted.

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

PROVIDERS = ("GITHUB", "github-ocean")
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
        self.token_secret = settings.github_token_secret

    async def execute(self, data: ActionInput) -> ActionResult:
        cfg = data.config
        provider = cfg.get("integrationProvider")
        if provider not in PROVIDERS:
            raise ActionError(f"config.integrationProvider {provider!r} is an Ocean integration, served by "
                              "integration workers (Port's claim-pending API), which Stepline does not offer yet; "
                              "Stepline runs " + ", ".join(PROVIDERS) + " itself")
        dispatch = Dispatch.of(cfg.get("integrationActionExecutionProperties"))
        token = await self._token(cfg.get("tokenSecret") or self.token_secret)
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
            raise ActionError(f"secret {name!r} (config.tokenSecret, or the executor's GitHub token secret) "
                              "does not exist")
        token = token.strip()
        if not _TOKEN.fullmatch(token):
            raise ActionError(f"secret {name!r} (config.tokenSecret) does not hold a usable token")
        return token
