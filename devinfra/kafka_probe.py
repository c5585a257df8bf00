"""Kafka's Metadata request over the wire protocol, with no client library: the broker's readiness probe."""

from __future__ import annotations

import socket
import struct

from devinfra.ports import LOOPBACK


def kafka_metadata(port: int, timeout: float = 2.0) -> tuple[list[int], int]:
    """Ask the broker for cluster metadata (Metadata v4, no topics): (broker ids, controller id).

    A real request over Kafka's wire protocol, so it proves the broker serves clients, not just
    that a socket accepts connections. Raises OSError or ValueError when it does not answer.
    """
    client_id = b"devinfra"
    correlation = 0x5E5E
    body = (struct.pack(">hhih", 3, 4, correlation, len(client_id)) + client_id
            + struct.pack(">ib", 0, 0))  # topics: empty array; allow_auto_topic_creation: false
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(s, 4))[0]
        payload = _recv_exact(s, size)
    reader = _Reader(payload)
    if reader.int32() != correlation:
        raise ValueError("Kafka answered with a wrong correlation id")
    reader.int32()  # throttle_time_ms
    brokers = []
    for _ in range(reader.int32()):
        brokers.append(reader.int32())
        reader.string()  # host
        reader.int32()  # port
        reader.string()  # rack
    reader.string()  # cluster_id
    return brokers, reader.int32()


def _recv_exact(s: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = s.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def int32(self) -> int:
        value: int = struct.unpack_from(">i", self.data, self.pos)[0]
        self.pos += 4
        return value

    def string(self) -> str | None:
        length: int = struct.unpack_from(">h", self.data, self.pos)[0]
        self.pos += 2
        if length < 0:
            return None
        value = self.data[self.pos:self.pos + length].decode()
        self.pos += length
        return value
