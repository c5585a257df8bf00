"""Length-prefixed frames between the pool and its workers (pipes, so no partial messages)."""

from __future__ import annotations

import struct

HEADER = struct.Struct("<II")
"""A request: lengths of the expressions (a JSON list) and of the context's JSON text."""
REPLY = struct.Struct("<I")
"""A reply: length of the outcomes' JSON."""


def request(expressions_json: bytes, text: bytes) -> bytes:
    return HEADER.pack(len(expressions_json), len(text)) + expressions_json + text
READY = b"R"
"""What a worker writes once it is ready (jq loaded, memory capped): deadlines start after it."""
MAX_REPLY = 16 * 1024 * 1024
"""The largest reply (the results' JSON) a worker sends: a bigger result is an evaluation error, so
the service never parses hundreds of MiB a worker could build within its memory cap."""
