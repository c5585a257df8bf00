"""MCP servers as tools, through the official `mcp` SDK: connect to a registered server (streamable HTTP
through the egress guard, or a stdio subprocess), list its tools as `ToolSpec`s and call one.

A server's `headersSecret` is read from the secret store (the executor's tracked reader, so its value is
masked in whatever the attempt stores) and sent as request headers only. A stdio server gets the SDK's
minimal default environment, never the executor's. Every call has the server's `timeoutSeconds`.
Connection failures and time-outs are retryable; a tool that answers `isError` is not.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from libs.access.secret_scope import current_workspace
from libs.core.agents import KIND_MCP_SERVERS, McpServer
from libs.core.egress import EgressPolicy
from libs.core.errors import ActionError
from libs.core.secrets import SecretReader
from libs.core.workspaces import scoped
from libs.store.ports import EntryStore
from services.executor.ai.models import ToolSpec

if TYPE_CHECKING:  # the SDK is imported when a server is first used: it takes seconds to import
    import mcp_types
    from mcp.client.session import ClientSession

MAX_TEXT = 100_000


class McpError(ActionError):
    code = "mcp_failed"


class McpConnection:
    """One initialized session with one server."""

    def __init__(self, identifier: str, server: McpServer, session: ClientSession) -> None:
        self.identifier = identifier
        self.server = server
        self.session = session

    async def tools(self) -> list[ToolSpec]:
        with anyio.fail_after(self.server.timeoutSeconds):
            listed = await self.session.list_tools()
        return [ToolSpec(name=t.name, description=t.description or t.title or t.name,
                         parameters=t.input_schema or {"type": "object", "properties": {}}) for t in listed.tools]

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """The tool's structured content if any, else its text; McpError when it answers an error."""
        try:
            with anyio.fail_after(self.server.timeoutSeconds):
                result = await self.session.call_tool(tool, arguments)
        except TimeoutError:
            raise McpError(f"MCP tool {tool!r} of server {self.identifier!r} did not answer within "
                           f"{self.server.timeoutSeconds:g}s", retryable=True) from None
        except Exception as exc:
            raise McpError(f"MCP tool {tool!r} of server {self.identifier!r} failed: {describe(exc)}") from None
        if result.is_error:
            raise McpError(f"MCP tool {tool!r} of server {self.identifier!r} answered an error: "
                           f"{text_of(result)[:2000] or 'no message'}")
        return result.structured_content if result.structured_content is not None else text_of(result)


def text_of(result: mcp_types.CallToolResult) -> str:
    """The text blocks of a result, joined; other blocks are named by type."""
    parts = [str(getattr(block, "text", "")) if block.type == "text" else f"[{block.type} content]"
             for block in result.content]
    return "\n".join(parts)[:MAX_TEXT]


def first_error(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (the exception itself otherwise); the SDK's task groups
    wrap errors, and an error may also travel as another's `__cause__` (an httpx2 transport error)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc.__cause__ if isinstance(exc.__cause__, ActionError) else exc


def describe(exc: BaseException) -> str:
    """An exception (the first leaf of an exception group) as `Type: message`, without secrets."""
    exc = first_error(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


async def _initialize(identifier: str, server: McpServer, session: ClientSession) -> None:
    try:
        with anyio.fail_after(server.timeoutSeconds):
            await session.initialize()
    except TimeoutError:
        raise McpError(f"MCP server {identifier!r} did not answer within {server.timeoutSeconds:g}s",
                       retryable=True) from None
    except Exception as exc:
        if isinstance(leaf := first_error(exc), ActionError):
            raise leaf from None  # an egress refusal, not retryable
        raise McpError(f"cannot connect to MCP server {identifier!r}: {describe(exc)}", retryable=True) from None


def unwrapped(group: BaseExceptionGroup[Any], identifier: str) -> BaseException:
    """The first error of an exception group: itself when it is an ActionError, else an McpError."""
    leaf = first_error(group)
    if isinstance(leaf, ActionError) or not isinstance(leaf, Exception):
        return leaf
    return McpError(f"MCP server {identifier!r} failed: {describe(leaf)}", retryable=True)


class McpServers:
    """The registered servers of the current run's workspace (secret_scope.in_workspace)."""

    def __init__(self, store: EntryStore, secrets: SecretReader, policy: EgressPolicy) -> None:
        self.store = store
        self.secrets = secrets
        self.policy = policy

    async def server(self, identifier: str) -> McpServer:
        entry = await self.store.get_entry(KIND_MCP_SERVERS, scoped(current_workspace(), identifier))
        if entry is None:
            raise McpError(f"MCP server {identifier!r} is not registered (PUT /v1/mcp-servers/{identifier})")
        return McpServer.model_validate(entry.data)

    @asynccontextmanager
    async def connect(self, identifier: str) -> AsyncIterator[McpConnection]:
        """An initialized session with server `identifier`, closed (its subprocess stopped) on exit.
        The SDK's task groups wrap errors in exception groups: the first one is raised unwrapped."""
        server = await self.server(identifier)
        try:
            async with AsyncExitStack() as stack:
                session = await self._open(stack, server)
                await _initialize(identifier, server, session)
                yield McpConnection(identifier, server, session)
        except BaseExceptionGroup as group:
            raise unwrapped(group, identifier) from None

    async def _open(self, stack: AsyncExitStack, server: McpServer) -> ClientSession:
        from mcp.client.session import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client

        from libs.runtime.egress_httpx2 import guarded_client2
        if server.transport == "stdio":
            argv = server.command or []
            streams = await stack.enter_async_context(
                stdio_client(StdioServerParameters(command=argv[0], args=argv[1:]), errlog=sys.stderr))
        else:
            client = guarded_client2(self.policy, headers=await self._headers(server),
                                     timeout=server.timeoutSeconds)
            await stack.enter_async_context(client)
            streams = await stack.enter_async_context(streamable_http_client(server.url or "", http_client=client))
        read, write = streams[0], streams[1]
        return await stack.enter_async_context(ClientSession(read, write))

    async def _headers(self, server: McpServer) -> dict[str, str] | None:
        if server.headersSecret is None:
            return None
        value = await self.secrets.reveal(server.headersSecret)
        if value is None:
            raise McpError(f"secret {server.headersSecret!r} (the headers of an MCP server) does not exist")
        try:
            headers = json.loads(value)
        except ValueError:
            headers = None
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise McpError(f"secret {server.headersSecret!r} must hold a JSON object of header names to strings")
        return {str(k): v for k, v in headers.items()}
