"""The guarded HTTP client of every outbound request a workflow causes (WEBHOOK, NOTIFY,
INTEGRATION_ACTION, notification URLs).

The guard sits where the connection is made: httpcore asks its network backend to `connect_tcp` to
the URL's host, and `GuardedBackend` resolves that host itself, checks every address against the
`EgressPolicy` (libs/core/egress.py) and connects to an address it checked. The address checked is
the address connected to, so a DNS answer that changes between a check and the connection (DNS
rebinding) cannot slip through, and a redirect, which opens its own connection, is checked the same
way. TLS still verifies the certificate against the host name (httpcore passes the URL's host as
`server_hostname`). Pooled connections are keyed by origin and were checked when they were opened.
A refusal raises `EgressRefused`, a non-retryable `ActionError` that no `httpx.HTTPError` handler
swallows.
"""

from __future__ import annotations

import asyncio
import socket
import typing
from collections.abc import Awaitable, Callable

import httpcore
import httpx

from libs.core.egress import EgressPolicy, EgressRefused

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6), in the resolver's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None, *,
                 resolver: Resolver = resolve) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else httpcore.AnyIOBackend()
        self.resolver = resolver

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        refusal = self.policy.refusal(host)
        if refusal is not None:
            raise EgressRefused(refusal)
        last: Exception | None = None
        for address in await self.allowed(host, port, timeout):
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last if last is not None else httpcore.ConnectError(f"cannot connect to {host}")

    async def allowed(self, host: str, port: int, timeout: float | None) -> list[str]:
        """The addresses of `host` the policy allows; EgressRefused when it allows none."""
        try:
            addresses = await asyncio.wait_for(self.resolver(host, port), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        allowed = [a for a in addresses if self.policy.refusal(host, a) is None]
        if addresses and not allowed:
            raise EgressRefused(self.policy.refusal(host, addresses[0]) or f"the egress rules refuse {host}")
        return allowed

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("Unix sockets are not an allowed destination")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(policy: EgressPolicy, *, resolver: Resolver = resolve) -> httpx.AsyncHTTPTransport:
    """httpx's own transport, whose connection pool connects only through `GuardedBackend`.
    `trust_env=False`: a proxy from the environment would connect on the guard's behalf."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    pool = transport._pool
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpcore version has no pluggable network backend; the egress guard needs one")
    pool._network_backend = GuardedBackend(policy, pool._network_backend, resolver=resolver)
    return transport


def guarded_client(policy: EgressPolicy, *, resolver: Resolver = resolve) -> httpx.AsyncClient:
    """The client actions and the notifier share. Redirects are not followed (httpx's default); if a
    caller follows them, each hop still connects through the guard."""
    return httpx.AsyncClient(transport=guarded_transport(policy, resolver=resolver), trust_env=False)
