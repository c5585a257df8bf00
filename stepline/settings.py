"""Settings of the embedded engine: the union of every service's settings."""

from pydantic import Field

from services.executor.settings import ExecutorSettings
from services.notifier.settings import NotifierSettings
from services.scheduler.settings import SchedulerSettings
from services.trigger.settings import TriggerSettings

ANY_ADDRESS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


class EmbeddedSettings(TriggerSettings, SchedulerSettings, ExecutorSettings, NotifierSettings):
    """All four services in one process over the in-memory bus and SQLite."""

    sqlite_commit_window_ms: float = Field(default=20.0, ge=0, le=60_000)
    """Milliseconds during which the store's writes share one transaction (group commit; the API
    answers only once what it reports is committed); 0 commits every statement by itself."""

    def own_api_url(self) -> str:
        """`api_url` when set, else the API's own address from `host` and `port` (a wildcard bind
        address as loopback); empty for port 0 (not known before it is bound)."""
        if self.api_url or not self.port:
            return self.api_url
        host = ANY_ADDRESS.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
