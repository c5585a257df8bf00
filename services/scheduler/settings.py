"""Scheduler settings."""

from pydantic import Field

from libs.runtime.settings import CommonSettings


class SchedulerSettings(CommonSettings):
    sweep_batch: int = 200
    """How many idle runs / due timers one sweep picks up."""
    reconcile_max_seconds: float = Field(default=30.0, gt=0)
    """The longest wait between two reconciles of an idle run that makes no progress (they back off
    from `stale_seconds`, doubling), and how long a published `ReconcileRun` may wait unhandled
    before another is sent (services/scheduler/sweeper.py)."""
