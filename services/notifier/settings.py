"""Notifier settings."""

from libs.runtime.settings import CommonSettings


class NotifierSettings(CommonSettings):
    notify_timeout_seconds: float = 10.0
