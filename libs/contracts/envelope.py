"""CloudEvents 1.0 structured-mode JSON envelope around every message."""

from __future__ import annotations

import itertools
import json
import os
import time as _time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from libs.contracts import v1

SPEC_VERSION = "1.0"
_PROCESS_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count()


def new_message_id() -> str:
    """Unique per message: a random per-process prefix and a counter (no syscall per message)."""
    return f"{_PROCESS_PREFIX}-{next(_COUNTER):x}"


class _Wire(BaseModel):
    """An envelope as it arrives (bytes from a broker, an outbox entry): validated, then kept as an
    `Envelope`. A missing `id` or `time` is made here."""

    model_config = ConfigDict(frozen=True)

    id: str | None = None
    specversion: str = SPEC_VERSION
    type: str
    source: str
    subject: str
    time: str | None = None
    datacontenttype: str = "application/json"
    data: dict[str, Any]


_SET = object.__setattr__


class Envelope:
    """One message on the bus; `subject` is the run id and doubles as the partition key. Immutable.

    An envelope made around a message (`wrap`) keeps the message and makes its `data` (the message's
    JSON form) and `time` (ISO 8601) when they are first read: an in-memory delivery reads neither,
    a broker or an outbox reads both. Envelopes are equal when their CloudEvents forms are."""

    __slots__ = ("id", "specversion", "type", "source", "subject", "datacontenttype", "_time", "_data",
                 "_message")

    id: str
    specversion: str
    type: str
    source: str
    subject: str
    datacontenttype: str
    _time: str | float
    _data: dict[str, Any] | None
    _message: v1.Message | None

    def __init__(self, *, type: str, source: str, subject: str, data: dict[str, Any] | None = None,
                 id: str | None = None, time: str | float | None = None, specversion: str = SPEC_VERSION,
                 datacontenttype: str = "application/json", message: v1.Message | None = None) -> None:
        if data is None and message is None:
            raise ValueError("an envelope needs its data or its message")
        _SET(self, "id", id if id is not None else new_message_id())
        _SET(self, "specversion", specversion)
        _SET(self, "type", type)
        _SET(self, "source", source)
        _SET(self, "subject", subject)
        _SET(self, "datacontenttype", datacontenttype)
        _SET(self, "_time", time if time is not None else _time.time())
        _SET(self, "_data", data)
        _SET(self, "_message", message)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"an envelope is immutable (tried to set {name})")

    @property
    def key(self) -> str:
        return self.subject

    @property
    def time(self) -> str:
        at = self._time
        if isinstance(at, str):
            return at
        rendered = datetime.fromtimestamp(at, UTC).isoformat()
        _SET(self, "_time", rendered)
        return rendered

    @property
    def data(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            assert self._message is not None  # one of the two is always set
            data = self._message.model_dump(mode="json", by_alias=True)
            _SET(self, "_data", data)
        return data

    def message(self) -> v1.Message:
        """The frozen message named by `type`, decoded from `data` once (UnknownMessageError if the
        type is unknown); an envelope made by `wrap` holds its message already."""
        message = self._message
        if message is None:
            message = v1.decode(self.type, self.data)
            _SET(self, "_message", message)
        return message

    def model_dump(self, *, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        """The CloudEvents form (`mode` is accepted for symmetry: `data` is JSON data either way)."""
        return {"id": self.id, "specversion": self.specversion, "type": self.type, "source": self.source,
                "subject": self.subject, "time": self.time, "datacontenttype": self.datacontenttype,
                "data": self.data}

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(), separators=(",", ":")).encode()

    @classmethod
    def model_validate(cls, raw: Any) -> Envelope:
        """An envelope from its CloudEvents form (pydantic's ValidationError if it is not one)."""
        return cls._of(_Wire.model_validate(raw))

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Envelope:
        return cls._of(_Wire.model_validate_json(raw))

    @classmethod
    def _of(cls, wire: _Wire) -> Envelope:
        return cls(id=wire.id, specversion=wire.specversion, type=wire.type, source=wire.source,
                   subject=wire.subject, time=wire.time, datacontenttype=wire.datacontenttype, data=wire.data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Envelope) and self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Envelope(id={self.id!r}, type={self.type!r}, source={self.source!r}, subject={self.subject!r})"


def wrap(message: v1.Message, *, source: str) -> Envelope:
    """Put a message in an envelope keyed by its run id. A run event's id is `<runId>/<seq>` and its
    time the state change's, so a redelivered event is the same envelope."""
    if isinstance(message, v1.RunEvent):
        return Envelope(id=message.event_id, time=message.at, type=message.TYPE, source=source,
                        subject=message.run_id, message=message)
    return Envelope(type=message.TYPE, source=source, subject=message.run_id, message=message)
