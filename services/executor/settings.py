"""Executor settings."""

from pydantic import Field, SecretStr

from libs.runtime.settings import CommonSettings


class ExecutorSettings(CommonSettings):
    default_timeout_seconds: float = 30.0
    """Timeout of an action whose node sets no `timeoutSeconds`."""
    max_response_bytes: int = 1024 * 1024
    """A WEBHOOK response body above this is truncated in the node output."""
    concurrency: int = 64
    """How many node attempts one executor performs at once."""

    # NOTIFY with `channel: "email"` sends through this SMTP server.
    smtp_host: str = ""
    """Empty: email notifications fail with a clear, non-retryable error."""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "stepline@localhost"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_use_tls: bool = False
    """Implicit TLS from the first byte (usually port 465)."""
    smtp_starttls: bool | None = None
    """Upgrade with STARTTLS: True requires it, False never, None when the server offers it."""
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)

    api_url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    """The engine's own API base URL as node requests reach it (`http://trigger:8080` in compose);
    templates read it as `.run.apiUrl` (null when empty). Embedded mode sets it from host and port."""

    kafka_runs_topic: str = Field(default="port.runs", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    """Where a KAFKA node without `topic` publishes (Port's default runs topic, `<org>.runs`); checked
    like any node's topic when it publishes (never one of Stepline's own)."""

    # INTEGRATION_ACTION with `integrationProvider: "GITHUB"`.
    github_api_url: str = "https://api.github.com"
    """The REST API base (GitHub Enterprise Server: `https://HOST/api/v3`)."""
    github_token_secret: str = "GITHUB_TOKEN"
    """The secret holding the GitHub token of INTEGRATION_ACTION nodes without `tokenSecret` (Port's)."""
    github_poll_seconds: float = Field(default=5.0, gt=0)
    """How often a `reportStatus` node polls its workflow run."""
    github_return_run_details: bool = True
    """Ask the dispatch for the run it created (`return_run_details`); turn off for servers that
    reject the field, and the run is then found by listing the workflow's runs."""
