"""Settings of the trigger service (the HTTP API). Built in `__main__`; `build_app` never reads env."""

from __future__ import annotations

from pydantic import Field

from libs.runtime.settings import CommonSettings


class TriggerSettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    """Requests with a larger body are refused with 413 before they reach a route."""
    allowed_hosts: str = "127.0.0.1,localhost,::1"
    """Comma-separated names the `Host` header may carry (any port; `*`: any); others get 421
    (browser_guard.py). The bind address `host` is allowed too unless it is 0.0.0.0 or ::."""
    api_docs: bool = False
    """Serve the interactive API docs at `/docs` (its page loads Swagger UI from a CDN); the schema
    is always at `/openapi.json`."""
    accept_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long `POST /v1/workflows/{id}/runs` waits for the scheduler to insert the run."""
    schedule_poll_seconds: float = Field(default=0.5, gt=0)
    """How often the trigger workers look for due SCHEDULE_TRIGGER ticks."""
    schedule_grace_seconds: float = Field(default=30.0, gt=0)
    """A tick found at most this late is on time; older ones were missed (`missedTicks`)."""
    schedule_retry_seconds: float = Field(default=10.0, gt=0)
    """A claimed tick whose run start was not confirmed after this long is published again."""
    max_waiters: int = Field(default=1000, ge=0)
    """Requests that may wait (`?wait=`) for a run at once, per API replica; one more gets 429."""
    queue_reconcile_seconds: float = Field(default=1.0, gt=0)
    """How often the trigger workers subscribe to the topics of new QUEUE_TRIGGER nodes."""
