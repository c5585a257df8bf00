"""CloudEvents 1.0 structured-mode JSON envelope around every message."""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from libs.contracts import v1

SPEC_VERSION = "1.0"
_PROCESS_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count()


def new_message_id() -> str:
    """Unique per message: a random per-process prefix and a counter (no syscall per message)."""
    return f"{_PROCESS_PREFIX}-{next(_COUNTER):x}"


class Envelope(BaseModel):
    """`subject` is the run id and doubles as the partition key."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: str = Field(default_factory=new_message_id)
    specversion: str = SPEC_VERSION
    type: str
    source: str
    subject: str
    time: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    datacontenttype: str = "application/json"
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return self.subject

    def message(self) -> v1.Message:
        """Decode `data` into the frozen model named by `type`; UnknownMessageError if unknown. Decoded
        once per envelope (messages are frozen); an envelope made by `wrap` holds its message already."""
        return self._decoded

    @cached_property
    def _decoded(self) -> v1.Message:
        """Remembered in the instance (not a field: equality and dumps ignore it; a private attribute
        cost every envelope a second initialisation): consumers of an in-memory delivery share it."""
        return v1.decode(self.type, self.data)

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)


def wrap(message: v1.Message, *, source: str) -> Envelope:
    """Put a message in an envelope keyed by its run id. A run event's id is `<runId>/<seq>` and its
    time the state change's, so a redelivered event is the same envelope."""
    data = message.model_dump(mode="json", by_alias=True)
    if isinstance(message, v1.RunEvent):
        envelope = Envelope(id=message.event_id, time=message.at, type=message.TYPE, source=source,
                            subject=message.run_id, data=data)
    else:
        envelope = Envelope(type=message.TYPE, source=source, subject=message.run_id, data=data)
    envelope.__dict__["_decoded"] = message  # what `_decoded` would decode again
    return envelope
