"""The tools of one AI step or agent run, by the name the model calls them:

- each `tools` entry `workflow:<identifier>` → that workflow, run as a child run (`workflow__<id>`);
- every other entry is a name or a regular expression (Port's AI node) matched against the catalog
  read tools (`list_blueprints`, …);
- every tool of each server in `mcpServers` → `<server>__<tool>`, over one session per server that
  stays open for the whole loop (a stdio server is one subprocess for the step).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from libs.core.agents import CATALOG_TOOLS, WORKFLOW_PREFIX, function_name
from libs.core.errors import ActionError
from services.executor.actions.base import ActionInput
from services.executor.actions.child_runs import ChildRuns, ChildTarget
from services.executor.ai.catalog_tools import SPECS, CatalogTools
from services.executor.ai.mcp_tools import McpConnection, McpServers
from services.executor.ai.tool_loop import BoundTool
from services.executor.ai.workflow_tools import WorkflowTools


class Toolbox:
    def __init__(self, catalog: CatalogTools, workflows: WorkflowTools, mcp: McpServers, children: ChildRuns) -> None:
        self.catalog = catalog
        self.workflows = workflows
        self.mcp = mcp
        self.children = children

    @asynccontextmanager
    async def open(self, data: ActionInput, tools: tuple[str, ...],
                   mcp_servers: tuple[str, ...]) -> AsyncIterator[dict[str, BoundTool]]:
        bound: dict[str, BoundTool] = {}
        patterns = [t for t in tools if not t.startswith(WORKFLOW_PREFIX)]
        for name in matching_catalog_tools(patterns):
            bound[name] = BoundTool(SPECS[name], "catalog", self._catalog_call(name))
        calls = itertools.count(1)  # numbers the workflow calls: a re-performed attempt awaits the same children
        for entry in tools:
            if entry.startswith(WORKFLOW_PREFIX):
                name = function_name("workflow", entry[len(WORKFLOW_PREFIX):])
                spec, target = await self.workflows.spec(name, entry[len(WORKFLOW_PREFIX):])
                bound[name] = BoundTool(spec, "workflow", self._workflow_call(data, target, calls))
        async with AsyncExitStack() as stack:
            for server in mcp_servers:
                connection = await stack.enter_async_context(self.mcp.connect(server))
                for spec in await connection.tools():
                    name = function_name(server, spec.name)
                    bound[name] = BoundTool(type(spec)(name, spec.description, spec.parameters), "mcp",
                                            _mcp_call(connection, spec.name))
            yield bound

    def _catalog_call(self, name: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
        async def call(arguments: dict[str, Any]) -> Any:
            return await self.catalog.call(name, arguments)
        return call

    def _workflow_call(self, data: ActionInput, target: ChildTarget,
                       numbers: Iterator[int]) -> Callable[[dict[str, Any]], Awaitable[Any]]:
        async def call(arguments: dict[str, Any]) -> Any:
            parent = await self.children.parent(data)
            return await self.workflows.call(parent, data.node_run_key, next(numbers), target, arguments)
        return call


def _mcp_call(connection: McpConnection, tool: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    async def call(arguments: dict[str, Any]) -> Any:
        return await connection.call(tool, arguments)
    return call


def matching_catalog_tools(patterns: list[str]) -> list[str]:
    """The catalog tools some pattern matches whole (a plain name matches itself)."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ActionError(f"tools entry {pattern!r} is not a regular expression: {exc}") from None
    return [name for name in CATALOG_TOOLS if any(p.fullmatch(name) or p.pattern == name for p in compiled)]
