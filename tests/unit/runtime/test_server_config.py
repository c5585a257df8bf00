"""The HTTP server's configuration, shared by the services and embedded mode."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from libs.runtime.runner import server_config


def test_idle_connections_outlive_the_clients_reuse_window() -> None:
    """A server that closed idle connections when httpx still reuses them (both 5 s by default) lost
    a request now and then to a read error; the server must keep them open longer."""
    config = server_config(FastAPI(), "127.0.0.1", 8188)
    client_expiry = httpx.Limits(max_connections=None).keepalive_expiry
    assert client_expiry is not None
    assert config.timeout_keep_alive > client_expiry
    assert (config.host, config.port, config.access_log) == ("127.0.0.1", 8188, False)
