"""How envelopes travel as Kafka records, and what becomes of records that are not envelopes.

A record's key is the envelope's key (the run id) in UTF-8, its value the CloudEvents structured
JSON (`Envelope.to_bytes()`), and its headers carry the W3C `traceparent` and, for tools that route
without parsing the value, `ce_type` (the envelope's type).

A record whose value is not an envelope (not JSON, or JSON of the wrong shape) is a poison message:
`decode` raises `PoisonMessageError` and the consumer dead-letters it with `poison_letter`, a dead
letter like libs/bus/dead_letter.py's whose `envelope` is None and whose `raw_base64` holds the
value's bytes, so the partition moves on.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Final, Protocol

from pydantic import ValidationError

from libs.bus.dead_letter import DEAD_LETTER_TYPE, error_fields
from libs.contracts.envelope import Envelope
from libs.core.errors import SteplineError
from libs.telemetry.propagation import traceparent_header

CE_TYPE: Final = "ce_type"

Header = tuple[str, bytes]


class Record(Protocol):
    """The parts of aiokafka's `ConsumerRecord` the bus reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[Header]: ...


class PoisonMessageError(SteplineError):
    """A record that is not an envelope: not retryable, dead-lettered with its raw bytes."""

    code = "poison_message"


def encode(envelope: Envelope, traceparent: str) -> tuple[bytes, bytes, list[Header]]:
    """The key, value and headers of `envelope`'s record."""
    headers = [traceparent_header(traceparent), (CE_TYPE, envelope.type.encode())]
    return envelope.key.encode(), envelope.to_bytes(), headers


def decode(record: Record) -> Envelope:
    """The envelope in `record`; PoisonMessageError if it holds none."""
    if record.value is None:
        raise PoisonMessageError("record has no value (a tombstone)")
    try:
        return Envelope.from_bytes(record.value)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[:1]
        reason = first[0]["msg"] if first else "invalid"
        raise PoisonMessageError(f"record is not a CloudEvents envelope: {reason}") from exc


def poison_letter(
    record: Record, *, group: str, error: BaseException, source: str
) -> Envelope:
    """The dead letter of an undecodable `record`, keyed like it (its key read as UTF-8)."""
    key = (record.key or b"").decode(errors="replace")
    data: dict[str, Any] = {
        "envelope": None,
        "raw_base64": base64.b64encode(record.value or b"").decode("ascii"),
        "topic": record.topic,
        "group": group,
        "partition": record.partition,
        "offset": record.offset,
        "deliveries": 0,
        **error_fields(error),
    }
    return Envelope(type=DEAD_LETTER_TYPE, source=source, subject=key, data=data)
