"""The browser guard in front of an embedded engine: what a web page could send (a `text/plain` or
form POST, a request through a re-bound DNS name) is refused before any route runs, even with a
valid API key, and nothing is stored."""

from __future__ import annotations

from typing import Any

import httpx

from libs.store.pausing import is_paused
from libs.store.ports import RunFilter
from tests.service.test_embedded_runs import create, trigger


def hello(identifier: str = "csrf-target") -> dict[str, Any]:
    return {"identifier": identifier, "nodes": [trigger(), {"identifier": "t", "config": {
        "type": "TRANSFORM", "expression": "1"}}], "connections": [{"sourceIdentifier": "trigger",
                                                                     "targetIdentifier": "t"}]}


async def stored_runs(engine: Any, workflow: str) -> int:
    _, total = await engine.store.list_runs(RunFilter(workflows=(workflow,)), limit=1, offset=0)
    return int(total)


async def test_a_text_plain_post_that_would_start_a_run_is_415_and_starts_nothing(
        engine: Any, api: httpx.AsyncClient) -> None:
    await create(api, hello())
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"):
        response = await api.post("/v1/workflows/csrf-target/runs", content=b'{"inputs": {}}',
                                  headers={"Content-Type": content_type})
        assert response.status_code == 415, response.text
        assert response.json()["error"] == "unsupported_media_type"
    assert await stored_runs(engine, "csrf-target") == 0
    started = await api.post("/v1/workflows/csrf-target/runs", json={"inputs": {}})
    assert started.status_code == 201, started.text
    assert await stored_runs(engine, "csrf-target") == 1


async def test_a_form_post_cannot_create_a_workflow(engine: Any, api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/workflows", content=b"identifier=x",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert await engine.store.list_workflows() == []


async def test_a_foreign_host_is_refused_even_with_a_valid_key(engine: Any, api: httpx.AsyncClient) -> None:
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends that Host."""
    rebound = {"Host": "evil.example:8080"}
    read = await api.get("/v1/workflows", headers=rebound)
    assert read.status_code == 421 and read.json()["error"] == "misdirected_request"
    write = await api.post("/v1/workflows", json=hello("rebound"), headers=rebound)
    assert write.status_code == 421
    assert await engine.store.list_workflows() == []
    assert (await api.get("/healthz", headers=rebound)).status_code == 200
    assert (await api.get("/v1/workflows", headers={"Host": "localhost:8080"})).status_code == 200


async def test_a_post_without_a_body_still_works(engine: Any, api: httpx.AsyncClient) -> None:
    await create(api, hello())
    assert (await api.post("/v1/workflows/csrf-target/pause")).status_code == 200
    refused = await api.post("/v1/workflows/csrf-target/resume", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415
    assert await is_paused(engine.store, "csrf-target")
    assert (await api.post("/v1/workflows/csrf-target/resume")).status_code == 200
