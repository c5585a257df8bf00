"""Settings of the embedded engine: the union of every service's settings."""

from services.executor.settings import ExecutorSettings
from services.notifier.settings import NotifierSettings
from services.scheduler.settings import SchedulerSettings
from services.trigger.settings import TriggerSettings


class EmbeddedSettings(TriggerSettings, SchedulerSettings, ExecutorSettings, NotifierSettings):
    """All four services in one process over the in-memory bus and SQLite."""
