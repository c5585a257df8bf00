"""The browser guard in isolation: which Host names and which content types reach the app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from services.trigger.browser_guard import BrowserGuardMiddleware, allowed_host_names, host_name, media_type

LOOPBACK = allowed_host_names("127.0.0.1,localhost,::1")


class Recorder:
    """An ASGI app that answers 204 and counts the requests that reached it."""

    def __init__(self) -> None:
        self.reached = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.reached += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def send(method: str, path: str = "/v1/workflows", *, host: str = "127.0.0.1:8080",
               hosts: frozenset[str] = LOOPBACK, **kwargs: Any) -> tuple[httpx.Response, int]:
    app = Recorder()
    transport = httpx.ASGITransport(app=BrowserGuardMiddleware(app, allowed_hosts=hosts))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.request(method, path, headers={"Host": host, **kwargs.pop("headers", {})}, **kwargs)
    return response, app.reached


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8080", "localhost", "LOCALHOST:1", "localhost.",
                                  "[::1]:8080", "[::1]"])
async def test_loopback_names_with_any_port_are_allowed_by_default(host: str) -> None:
    response, reached = await send("GET", host=host)
    assert (response.status_code, reached) == (204, 1)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil",
                                  "10.0.0.5:8080", "[::2]", ""])
async def test_other_hosts_are_421_and_reach_nothing(host: str) -> None:
    response, reached = await send("POST", host=host, json={})
    assert (response.status_code, reached) == (421, 0)
    body = response.json()
    assert (body["ok"], body["error"]) == (False, "misdirected_request")
    assert "STEPLINE_ALLOWED_HOSTS" in body["message"]


async def test_health_probes_are_answered_whatever_the_host() -> None:
    for path in ("/healthz", "/readyz"):
        assert (await send("GET", path, host="10.1.2.3:8080"))[0].status_code == 204


def test_configured_names_the_bind_address_and_the_wildcard() -> None:
    hosts = allowed_host_names(" Stepline.Example.com , 10.0.0.5:8080,", bind_host="192.168.1.7")
    assert hosts == {"stepline.example.com", "10.0.0.5", "192.168.1.7"}
    assert allowed_host_names("localhost", bind_host="0.0.0.0") == {"localhost"}
    assert allowed_host_names("localhost", bind_host="::") == {"localhost"}
    assert allowed_host_names("", bind_host="engine.internal") == {"engine.internal"}
    assert host_name("[::1]:80") == "::1" and host_name("::1") == "::1"


async def test_a_configured_name_replaces_the_loopback_default_and_star_allows_all() -> None:
    configured = allowed_host_names("stepline.example.com")
    assert (await send("GET", host="stepline.example.com:443", hosts=configured))[0].status_code == 204
    assert (await send("GET", host="127.0.0.1", hosts=configured))[0].status_code == 421
    assert (await send("GET", host="anything.example", hosts=allowed_host_names("*")))[0].status_code == 204


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "text/plain; charset=utf-8", "application/jsonp", "text/json"])
async def test_state_changing_requests_with_a_non_json_body_are_415(method: str, content_type: str) -> None:
    response, reached = await send(method, content=b'{"a": 1}', headers={"Content-Type": content_type})
    assert (response.status_code, reached) == (415, 0)
    assert response.json()["error"] == "unsupported_media_type"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_an_empty_body_with_a_non_json_content_type_is_415(content_type: str) -> None:
    """What a cross-site form (or `text/plain` fetch) without fields sends: it could cancel a run."""
    response, reached = await send("POST", content=b"", headers={"Content-Type": content_type})
    assert (response.status_code, reached) == (415, 0)


@pytest.mark.parametrize(("content", "headers"), [
    (b'{"a": 1}', {"Content-Type": "application/json"}),
    (b'{"a": 1}', {"Content-Type": "Application/JSON; charset=utf-8"}),
    (b'{"a": 1}', {"Content-Type": "application/merge-patch+json"}),
    (b"", {}),
    (b"", {"Content-Type": "application/json"}),
])
async def test_json_bodies_and_empty_bodies_pass(content: bytes, headers: dict[str, str]) -> None:
    response, reached = await send("POST", content=content, headers=headers)
    assert (response.status_code, reached) == (204, 1)


async def test_a_body_without_a_content_type_is_415() -> None:
    response, reached = await send("PUT", content=b'{"a": 1}')
    assert (response.status_code, reached) == (415, 0)
    assert "without a Content-Type" in response.json()["message"]


async def test_reads_are_not_checked_for_content_type() -> None:
    assert (await send("GET", headers={"Content-Type": "text/plain"}))[0].status_code == 204


async def test_the_webhook_route_also_takes_form_bodies_but_nothing_else() -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert (await send("POST", "/v1/hooks/on-hook", content=b"a=1", headers=form))[0].status_code == 204
    assert (await send("POST", "/v1/workflows/x/runs", content=b"a=1", headers=form))[0].status_code == 415
    plain = {"Content-Type": "text/plain"}
    assert (await send("POST", "/v1/hooks/on-hook", content=b"a=1", headers=plain))[0].status_code == 415


def test_media_type() -> None:
    assert media_type(" Application/Json ; charset=utf-8") == "application/json"
    assert media_type(None) == ""


async def test_a_malformed_content_length_is_left_to_the_body_limit() -> None:
    """body_limit.py answers it with 400; the guard does not guess whether there is a body."""
    response, reached = await send("POST", content=b"{}", headers={"Content-Length": "x1"})
    assert (response.status_code, reached) == (204, 1)
