"""How envelopes travel as Kafka records, and what becomes of records that are not envelopes.

A record's key is the envelope's key (the run id) in UTF-8, its value the CloudEvents structured
JSON (`Envelope.to_bytes()`), and its headers carry the W3C `traceparent` and, for tools that route
without parsing the value, `ce_type` (the envelope's type).

A record whose value is not an envelope (not JSON, or JSON of the wrong shape) is a poison message:
`decode` raises `PoisonMessageError` and the consumer dead-letters it with `poison_letter`, a dead
letter like libs/bus/dead_letter.py's whose `envelope` is None and whose `raw_base64` holds the
value's bytes, so the partition moves on.

Topics that accept outside messages are the exception: the catalog-events topic always, and any
topic subscribed with `external=True` (QUEUE_TRIGGER topics). There a record whose value is JSON
but not an envelope is handed over as a `v1.ExternalMessage` envelope (`external_envelope`) whose id
`{topic}/{partition}/{offset}` is the same on every delivery and whose `headers` are the record's
`ce_` headers (a CloudEvent in binary mode). Values that are not JSON, and tombstones, are poison
there too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Final, Protocol

from pydantic import ValidationError

from libs.bus.dead_letter import DEAD_LETTER_TYPE, error_fields
from libs.contracts import cloudevents, topics, v1
from libs.contracts.envelope import Envelope
from libs.core.errors import SteplineError
from libs.telemetry.propagation import traceparent_header

CE_TYPE: Final = "ce_type"
EXTERNAL_SOURCE: Final = "stepline.bus.kafka.external"
ALWAYS_EXTERNAL: Final = frozenset({topics.CATALOG_EVENTS})
"""Topics every subscription reads outside JSON on (upstream catalog events)."""

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


def record_type(record: Record) -> str | None:
    """The envelope type the record's `ce_type` header names, without decoding its value (None: no
    such header; then the value is what says)."""
    for name, value in record.headers:
        if name == CE_TYPE:
            return value.decode(errors="replace")
    return None


def accepts_external(topic: str, external: bool) -> bool:
    """Whether a subscription to `topic` (made with `external`) reads plain JSON as ExternalMessage."""
    return external or topic in ALWAYS_EXTERNAL


def decode(record: Record, *, external: bool = False) -> Envelope:
    """The envelope in `record`; PoisonMessageError if it holds none. With `external`, a JSON value
    that is not one of Stepline's envelopes (a foreign CloudEvent included, extensions and all)
    becomes an ExternalMessage envelope instead."""
    if record.value is None:
        raise PoisonMessageError("record has no value (a tombstone)")
    try:
        envelope = Envelope.from_bytes(record.value)
        if external and not envelope.type.startswith(cloudevents.STEPLINE_TYPE_PREFIX):
            return external_envelope(record) or envelope
        return envelope
    except ValidationError as exc:
        if external:
            wrapped = external_envelope(record)
            if wrapped is not None:
                return wrapped
        first = exc.errors(include_url=False, include_input=False)[:1]
        reason = first[0]["msg"] if first else "invalid"
        raise PoisonMessageError(f"record is not a CloudEvents envelope: {reason}") from exc


def external_envelope(record: Record) -> Envelope | None:
    """`record` as a v1.ExternalMessage envelope, or None if its value is not JSON."""
    try:
        value = json.loads(record.value or b"", parse_constant=_reject_constant)
    except ValueError:  # not UTF-8, not JSON, or NaN/Infinity
        return None
    key = record.key.decode(errors="replace") if record.key is not None else None
    message = v1.ExternalMessage(run_id="", topic=record.topic, partition=record.partition,
                                 offset=record.offset, key=key, value=value, headers=cloud_event_headers(record))
    message_id = message.message_id
    message = message.model_copy(update={"run_id": key or message_id})
    return Envelope(id=message_id, type=message.TYPE, source=EXTERNAL_SOURCE, subject=message.run_id,
                    data=message.model_dump(mode="json"))


def cloud_event_headers(record: Record) -> dict[str, str]:
    """The record's `ce_` headers (CloudEvents binary mode, libs/contracts/cloudevents.py) as text."""
    return {name: value.decode(errors="replace") for name, value in record.headers
            if name.startswith(cloudevents.HEADER_PREFIX) and isinstance(value, bytes)}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


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
