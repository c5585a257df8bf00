"""The guarded HTTP client (libs/runtime/egress.py) against real loopback servers: the address
checked is the address connected to, whatever DNS answers, and every redirect is checked again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from libs.core.egress import EgressPolicy, EgressRefused
from libs.runtime.egress import guarded_client
from services.executor.actions import bounded_http
from tests.conftest import serving


async def hello(request: Request) -> Response:
    return JSONResponse({"host": request.headers["host"]})


async def to_metadata(request: Request) -> Response:
    return RedirectResponse("http://169.254.169.254/latest/meta-data/", status_code=302)


async def huge(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * 65536  # 4 MiB in all, never more than one chunk read past the limit
    return StreamingResponse(body(), media_type="text/plain")


APP = Starlette(routes=[Route("/hello", hello), Route("/redirect", to_metadata), Route("/huge", huge)])


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async with serving(APP) as base_url:
        yield base_url


def resolving_to(*addresses: str) -> object:
    seen: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        seen.append(host)
        return list(addresses)
    resolver.seen = seen  # type: ignore[attr-defined]
    return resolver


async def test_a_name_that_resolves_to_metadata_is_refused_before_connecting(server: str) -> None:
    port = httpx.URL(server).port
    resolver = resolving_to("169.254.169.254")
    async with guarded_client(EgressPolicy.of(), resolver=resolver) as client:  # type: ignore[arg-type]
        with pytest.raises(EgressRefused, match=r"rebind\.test \(169\.254\.169\.254\)"):
            await client.get(f"http://rebind.test:{port}/hello")
    assert resolver.seen == ["rebind.test"]  # type: ignore[attr-defined]


async def test_the_connection_goes_to_the_checked_address_only(server: str) -> None:
    """A resolver answering a denied and an allowed address: the request reaches the allowed one
    (loopback here), with the original Host header, and never the denied one."""
    port = httpx.URL(server).port
    resolver = resolving_to("169.254.169.254", "127.0.0.1")
    async with guarded_client(EgressPolicy.of(), resolver=resolver) as client:  # type: ignore[arg-type]
        response = await client.get(f"http://rebind.test:{port}/hello")
    assert response.json() == {"host": f"rebind.test:{port}"}


async def test_every_redirect_is_checked(server: str) -> None:
    async with guarded_client(EgressPolicy.of()) as client:
        first = await client.get(f"{server}/redirect")
        assert first.status_code == 302, "redirects are not followed by default"
        with pytest.raises(EgressRefused, match="169.254.169.254"):
            await client.get(f"{server}/redirect", follow_redirects=True)


async def test_operator_rules_apply_to_loopback(server: str) -> None:
    async with guarded_client(EgressPolicy.of("127.0.0.0/8, ::1")) as client:
        with pytest.raises(EgressRefused):
            await client.get(f"{server}/hello")
    async with guarded_client(EgressPolicy.of("0.0.0.0/0", "127.0.0.1")) as client:
        assert (await client.get(f"{server}/hello")).status_code == 200


async def test_a_literal_metadata_address_is_refused() -> None:
    async with guarded_client(EgressPolicy.of()) as client:
        with pytest.raises(EgressRefused):
            await client.get("http://169.254.169.254/latest/meta-data/")
        with pytest.raises(EgressRefused):
            await client.get("http://[::ffff:169.254.169.254]/")


async def test_a_response_body_is_cut_at_the_limit(server: str) -> None:
    async with guarded_client(EgressPolicy.of()) as client:
        cut = await bounded_http.request(client, "GET", f"{server}/huge", limit=100_000)
        whole = await bounded_http.request(client, "GET", f"{server}/hello", limit=100_000)
        exact = await bounded_http.request(client, "GET", f"{server}/huge", limit=64 * 65536)
    assert (cut.status, len(cut.body), cut.truncated) == (200, 100_000, True)
    assert not whole.truncated and whole.body.startswith(b"{")
    assert (len(exact.body), exact.truncated) == (64 * 65536, False)
