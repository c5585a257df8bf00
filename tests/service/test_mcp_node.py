"""MCP servers and the MCP node in an embedded engine, against a real MCP server written with the `mcp`
SDK (tests/service/mcp_server.py) over streamable HTTP on loopback (behind a bearer token held in a
secret) and over stdio (a subprocess): the registry API, templated arguments, structured and text
results, tool errors, a refused token and the egress rules."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_helpers import engine_client
from tests.conftest import serving
from tests.service.mcp_server import Gate, http_app
from tests.service.test_embedded_runs import chain, create, node_runs, run_to_end
from tests.service.test_notify_node import running_engine

TOKEN = "mcp-token-5f1e0c7d9a"
STDIO = [sys.executable, "-m", "tests.service.mcp_server"]


@contextlib.asynccontextmanager
async def mcp_http_server(gate: Gate | None = None) -> AsyncIterator[str]:
    """The test MCP server over streamable HTTP; yields its endpoint URL."""
    async with serving(http_app(TOKEN, gate), lifespan="on") as base_url:
        yield f"{base_url}/mcp"


@pytest.fixture
async def mcp_url() -> AsyncIterator[str]:
    async with mcp_http_server() as url:
        yield url


@contextlib.asynccontextmanager
async def engine_with_servers(tmp_path: Path, mcp_url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An engine whose workspace has the servers `web` (HTTP, token in a secret) and `local` (stdio)."""
    async with running_engine(tmp_path, **settings) as eng, engine_client(eng) as client:
        secret = json.dumps({"Authorization": f"Bearer {TOKEN}"})
        assert (await client.put("/v1/secrets/MCP_HEADERS", json={"value": secret})).status_code == 201
        web = {"transport": "http", "url": mcp_url, "headersSecret": "MCP_HEADERS"}
        assert (await client.put("/v1/mcp-servers/web", json=web)).status_code == 201
        assert (await client.put("/v1/mcp-servers/local", json={"transport": "stdio", "command": STDIO})).status_code == 201
        yield client


@pytest.fixture
async def api(tmp_path: Path, mcp_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with engine_with_servers(tmp_path, mcp_url) as client:
        yield client


def mcp(server: str, tool: str, arguments: Any) -> dict[str, Any]:
    return {"identifier": "call", "config": {"type": "MCP", "server": server, "tool": tool, "arguments": arguments}}


def with_inputs(definition: dict[str, Any]) -> dict[str, Any]:
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"a": {"type": "integer"}, "name": {"type": "string"}}}
    return definition


async def run_node(api: httpx.AsyncClient, workflow: str, node: dict[str, Any], **inputs: Any) -> dict[str, Any]:
    await create(api, with_inputs(chain(workflow, node)))
    run = await run_to_end(api, workflow, inputs)
    [call] = node_runs(run, "call")
    return call


async def test_mcp_server_records_are_validated_and_never_show_a_secret_value(api: httpx.AsyncClient) -> None:
    shown = (await api.get("/v1/mcp-servers/web")).json()["mcpServer"]
    assert shown["headersSecret"] == "MCP_HEADERS" and TOKEN not in json.dumps(shown)
    assert (await api.put("/v1/mcp-servers/web", json=shown)).status_code == 422  # `identifier` is not a field
    bad = {"transport": "ftp", "url": "http://127.0.0.1/mcp"}
    answer = await api.put("/v1/mcp-servers/odd", json=bad)
    assert answer.status_code == 422 and "transport" in answer.text
    answer = await api.put("/v1/mcp-servers/odd", json={"transport": "stdio", "url": "http://127.0.0.1/mcp"})
    assert answer.status_code == 422, answer.text
    assert {d["pointer"] for d in answer.json()["details"]} == {"/url", "/command"}, answer.text
    answer = await api.put("/v1/mcp-servers/odd", json={"transport": "http", "url": "file:///etc/passwd"})
    assert answer.status_code == 422 and "url" in answer.text
    assert (await api.delete("/v1/mcp-servers/local")).status_code == 200
    assert (await api.get("/v1/mcp-servers/local")).status_code == 404
    assert (await api.delete("/v1/mcp-servers/local")).status_code == 404


async def test_mcp_node_over_http_renders_arguments_and_outputs_structured_content(api: httpx.AsyncClient) -> None:
    call = await run_node(api, "mcp-http", mcp("web", "add", {"a": "{{ .inputs.a }}", "b": 2}), a=40)
    assert call["result"] == "SUCCESS", call
    assert call["output"] == {"sum": 42}
    assert TOKEN not in json.dumps(call)


async def test_mcp_node_over_stdio_outputs_text(api: httpx.AsyncClient) -> None:
    call = await run_node(api, "mcp-stdio", mcp("local", "shout", {"text": "hello {{ .inputs.name }}"}), name="ada")
    assert call["result"] == "SUCCESS", call
    assert call["output"] == "HELLO ADA"


@pytest.mark.parametrize("server", ["web", "local"])
async def test_a_tool_error_fails_the_node_naming_it(api: httpx.AsyncClient, server: str) -> None:
    call = await run_node(api, f"mcp-fail-{server}", mcp(server, "fail", {"reason": "no budget"}))
    assert call["result"] == "FAILED"
    assert f"MCP tool 'fail' of server '{server}' answered an error" in call["error"]
    assert "refused: no budget" in call["error"]


async def test_an_unknown_server_fails_the_node(api: httpx.AsyncClient) -> None:
    call = await run_node(api, "mcp-unknown", mcp("nowhere", "add", {}))
    assert call["result"] == "FAILED" and "MCP server 'nowhere' is not registered" in call["error"]


async def test_a_refused_token_fails_the_node_without_showing_it(api: httpx.AsyncClient) -> None:
    wrong = json.dumps({"Authorization": "Bearer wrong-token-0000"})
    assert (await api.put("/v1/secrets/MCP_HEADERS", json={"value": wrong})).status_code == 200
    call = await run_node(api, "mcp-401", mcp("web", "add", {"a": 1, "b": 1}))
    assert call["result"] == "FAILED" and "MCP server 'web'" in call["error"]
    assert "wrong-token-0000" not in json.dumps(call)


async def test_http_servers_obey_the_egress_rules(tmp_path: Path, mcp_url: str) -> None:
    async with engine_with_servers(tmp_path, mcp_url, egress_deny="127.0.0.0/8") as api:
        retried = {**mcp("web", "add", {"a": 1, "b": 1}), "retry": {"maxAttempts": 3, "initialIntervalSeconds": 0.01}}
        await create(api, with_inputs(chain("mcp-egress", retried)))
        calls = node_runs(await run_to_end(api, "mcp-egress", {}), "call")
    assert len(calls) == 1, "an egress refusal is not retried"
    [call] = calls
    assert call["result"] == "FAILED" and "127.0.0.1" in call["error"], call
    assert "egress" in call["error"].lower(), call
