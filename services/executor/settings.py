"""Executor settings."""

from libs.runtime.settings import CommonSettings


class ExecutorSettings(CommonSettings):
    default_timeout_seconds: float = 30.0
    """Timeout of an action whose node sets no `timeoutSeconds`."""
    max_response_bytes: int = 1024 * 1024
    """A WEBHOOK response body above this is truncated in the node output."""
    concurrency: int = 64
    """How many node attempts one executor performs at once."""
