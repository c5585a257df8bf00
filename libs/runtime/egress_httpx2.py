"""The egress guard (egress.py) for clients built on httpx2/httpcore2, the HTTP stack of the `mcp`
SDK: the same `EgressPolicy` checks the same resolved addresses at connection time, so MCP servers
reached over HTTP obey the engine's egress rules like every other outbound request."""

from __future__ import annotations

import typing

import httpcore2
import httpx2

from libs.core.egress import EgressPolicy, EgressRefused
from libs.runtime.egress import GuardedBackend, Resolver, resolve


class GuardedBackend2(httpcore2.AsyncNetworkBackend):
    """Connects only to the addresses `GuardedBackend` allows (its refusal and resolution rules)."""

    def __init__(self, policy: EgressPolicy, inner: httpcore2.AsyncNetworkBackend, *,
                 resolver: Resolver = resolve) -> None:
        self.guard = GuardedBackend(policy, resolver=resolver)
        self.inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore2.SOCKET_OPTION] | None = None,
                          ) -> httpcore2.AsyncNetworkStream:
        refusal = self.guard.policy.refusal(host)
        if refusal is not None:
            raise EgressRefused(refusal)
        last: Exception | None = None
        for address in await self.guard.allowed(host, port, timeout):
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        raise last if last is not None else httpcore2.ConnectError(f"cannot connect to {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[httpcore2.SOCKET_OPTION] | None = None,
                                  ) -> httpcore2.AsyncNetworkStream:
        raise EgressRefused("Unix sockets are not an allowed destination")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_client2(policy: EgressPolicy, *, headers: dict[str, str] | None = None,
                    timeout: float = 30.0) -> httpx2.AsyncClient:
    """An httpx2 client whose pool connects only through `GuardedBackend2`; no proxy from the environment."""
    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    pool = transport._pool
    if not isinstance(pool, httpcore2.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpcore2 version has no pluggable network backend; the egress guard needs one")
    pool._network_backend = GuardedBackend2(policy, pool._network_backend)
    return httpx2.AsyncClient(transport=transport, trust_env=False, headers=headers,
                              timeout=httpx2.Timeout(timeout))
