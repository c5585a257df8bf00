"""Loopback TCP ports: the development servers listen on 127.0.0.1 only."""

from __future__ import annotations

import socket
import time

from devinfra.errors import InfraError

LOOPBACK = "127.0.0.1"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def require_free_port(name: str, port: int) -> None:
    if not port_free(port):
        raise InfraError(f"cannot start {name}: {LOOPBACK}:{port} is already in use "
                         "(is another instance running? try `make infra-down`)")


def wait_port_free(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_free(port) and time.monotonic() < deadline:
        time.sleep(0.1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def tcp_answers(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False
