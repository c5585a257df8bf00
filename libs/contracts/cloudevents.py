"""Messages from outside Stepline, CloudEvents 1.0 or plain JSON: the one rule of every topic that takes
them (`stepline.catalog-events.v1` and QUEUE_TRIGGER topics; docs/events.md, "Messages Stepline reads").

A message is a CloudEvent when
- **structured mode**: its value is a JSON object whose `specversion`, `type`, `source` and `id` are
  strings (the event's attributes beside `data`), or
- **binary mode**: its Kafka record has the headers `ce_specversion`, `ce_type`, `ce_source` and `ce_id`
  (`ce_` + attribute name, UTF-8); the record's value is the event's `data`.

A CloudEvent's payload is its `data`, and its attributes (`id`, `source`, `type`, `specversion`,
`subject`, `time`, extensions; never `data`) travel separately. Any other JSON value is its own payload.
Stepline's own envelopes (such as the KAFKA node's) are CloudEvents too, so they follow the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from libs.contracts import v1
from libs.contracts.envelope import Envelope

REQUIRED: Final = ("specversion", "type", "source", "id")
STEPLINE_TYPE_PREFIX: Final = "dev.stepline."
"""The types of Stepline's own envelopes (catalog events, the KAFKA node's messages); a reader of
outside messages reads every other CloudEvent as one."""
HEADER_PREFIX: Final = "ce_"
_DATA_FIELDS: Final = frozenset({"data", "data_base64"})


@dataclass(frozen=True)
class Incoming:
    """One message as its reader sees it."""

    payload: Any
    """`data` of a CloudEvent, else the message's JSON value."""
    attributes: dict[str, Any] | None
    """A CloudEvent's attributes; None for plain JSON."""
    id: str
    """The CloudEvent's `id`; for plain JSON the delivery's own id (`{topic}/{partition}/{offset}` on
    Kafka, the same on every redelivery)."""

    @property
    def is_cloud_event(self) -> bool:
        return self.attributes is not None


def _has_attributes(candidate: Mapping[str, Any]) -> bool:
    return all(isinstance(candidate.get(name), str) and candidate.get(name) for name in REQUIRED)


def structured(value: Any) -> dict[str, Any] | None:
    """The attributes of a structured-mode CloudEvent, or None if `value` is not one."""
    if not isinstance(value, dict) or not _has_attributes(value):
        return None
    return {k: v for k, v in value.items() if k not in _DATA_FIELDS}


def binary(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The attributes a binary-mode record's `ce_` headers carry, or None if they make no CloudEvent."""
    attributes = {k[len(HEADER_PREFIX):]: v for k, v in headers.items() if k.startswith(HEADER_PREFIX)}
    return attributes if _has_attributes(attributes) else None


def read(value: Any, headers: Mapping[str, str], *, delivery_id: str) -> Incoming:
    """A message's value and headers by the rule above (structured mode wins over headers)."""
    attributes = structured(value)
    if attributes is not None:
        return Incoming(value.get("data"), attributes, str(attributes["id"]))
    attributes = binary(headers)
    if attributes is not None:
        return Incoming(value, attributes, str(attributes["id"]))
    return Incoming(value, None, delivery_id)


def incoming(envelope: Envelope) -> Incoming:
    """What a handler on such a topic received: a `v1.ExternalMessage` (a record that was not a
    Stepline envelope) is read by the rule; any other envelope is a structured CloudEvent already."""
    if envelope.type == v1.ExternalMessage.TYPE:
        message = v1.ExternalMessage.model_validate(envelope.data)
        return read(message.value, message.headers, delivery_id=envelope.id)
    attributes = {k: v for k, v in envelope.model_dump().items() if k not in _DATA_FIELDS}
    return Incoming(dict(envelope.data), attributes, envelope.id)
