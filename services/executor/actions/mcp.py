"""MCP: call one tool of a registered MCP server with the node's (rendered) arguments.

Output: the tool's structured content when it sends one, else its text. A tool that answers an error
fails the node (not retryable); an unreachable or slow server fails it retryably.
"""

from __future__ import annotations

from libs.core.errors import ActionError
from services.executor.actions.base import ActionInput, ActionResult
from services.executor.actions.values import describe
from services.executor.ai.mcp_tools import McpServers


class McpAction:
    def __init__(self, servers: McpServers) -> None:
        self.servers = servers

    async def execute(self, data: ActionInput) -> ActionResult:
        server, tool = data.config.get("server"), data.config.get("tool")
        arguments = data.config.get("arguments") or {}
        if not isinstance(server, str) or not server:
            raise ActionError(f"config.server must render to an MCP server identifier, got {describe(server)}")
        if not isinstance(tool, str) or not tool:
            raise ActionError(f"config.tool must render to a tool name, got {describe(tool)}")
        if not isinstance(arguments, dict):
            raise ActionError(f"config.arguments must render to an object, got {describe(arguments)}")
        async with self.servers.connect(server) as connection:
            return ActionResult(output=await connection.call(tool, arguments))
