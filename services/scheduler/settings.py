"""Scheduler settings."""

from libs.runtime.settings import CommonSettings


class SchedulerSettings(CommonSettings):
    sweep_batch: int = 200
    """How many idle runs / due timers one sweep picks up."""
