"""Notifier settings."""

from libs.runtime.settings import CommonSettings


class NotifierSettings(CommonSettings):
    notify_timeout_seconds: float = 10.0
    stats_app_id: str = "stepline-notifier-stats"
    """The workflow statistics' faust app (services/notifier/stats.py): its consumer group, and the
    prefix of its internal topics (the table's changelog). One id per deployment."""
