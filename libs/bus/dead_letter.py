"""Dead letters: what a bus publishes to `topics.DEAD_LETTERS` when a message cannot be handled.

Every bus adapter uses the same policy and the same letter:

- `is_retryable(exc)`: a `SteplineError` says itself whether retrying can help (`retryable`); any
  other exception (a bug, a driver error) is assumed transient and retried;
- `dead_letter_envelope(...)`: an envelope of type `DEAD_LETTER_TYPE`, keyed like the original
  message (so one run's dead letters stay ordered), whose `data` holds:

      envelope        the original envelope, as a JSON-ready dict
      topic, group    where handling failed
      partition       the partition it was read from, and `offset` its position there
      deliveries      how many times it was handed to the handler
      error_type      the exception's class name
      error_code      `SteplineError.code`, or None for other exceptions
      error_message   `str(exc)`, cut to `MAX_ERROR_CHARS` characters

Only `str(exc)` is kept: never `args` beyond it, attributes such as `ActionError.output`, or the
traceback, any of which may carry secrets.
"""

from __future__ import annotations

from typing import Any, Final

from libs.contracts.envelope import Envelope
from libs.core.errors import SteplineError
from libs.telemetry.metrics import DEAD_LETTERS

DEAD_LETTER_TYPE: Final = "dev.stepline.dead-letter.v1"
MAX_ERROR_CHARS: Final = 2000


def is_retryable(error: BaseException) -> bool:
    """Whether delivering the same message again may help."""
    if isinstance(error, SteplineError):
        return error.retryable
    return True


def dead_letter_envelope(
    envelope: Envelope,
    *,
    topic: str,
    group: str,
    partition: int,
    offset: int,
    deliveries: int,
    error: BaseException,
    source: str,
) -> Envelope:
    """The dead letter for `envelope`, which failed in `group` on `topic` with `error` (counted in
    `stepline_dead_letters_total`: every bus builds a letter only to publish it)."""
    DEAD_LETTERS.labels(topic).inc()
    data: dict[str, Any] = {
        "envelope": envelope.model_dump(mode="json"),
        "topic": topic,
        "group": group,
        "partition": partition,
        "offset": offset,
        "deliveries": deliveries,
        **error_fields(error),
    }
    return Envelope(type=DEAD_LETTER_TYPE, source=source, subject=envelope.subject, data=data)


def error_fields(error: BaseException) -> dict[str, Any]:
    """The safe description of an error: its type, code and `str()`, nothing else."""
    return {
        "error_type": type(error).__name__,
        "error_code": error.code if isinstance(error, SteplineError) else None,
        "error_message": str(error)[:MAX_ERROR_CHARS],
    }
