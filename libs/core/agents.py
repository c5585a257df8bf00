"""Agents, MCP servers and the tools an agent may call, as pure records and names.

Both records are EntryStore entries (`KIND_AGENTS`, `KIND_MCP_SERVERS`) keyed by the workspace-scoped
identifier; the API validates them with these models, the executor reads them back with them. An
agent's `tools` are Stepline's catalog read tools by name or `workflow:<identifier>` (that workflow run
as a child run); every tool of each server in `mcpServers` is offered too, named `<server>__<tool>`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationInfo, field_validator

from libs.core.identifiers import MAX_IDENTIFIER_LENGTH
from libs.core.secrets import MAX_SECRET_NAME_LENGTH, SECRET_NAME_PATTERN

KIND_AGENTS = "agents"
KIND_MCP_SERVERS = "mcp-servers"
CATALOG_TOOLS: tuple[str, ...] = ("list_blueprints", "list_entities", "search_entities", "get_entity")
WORKFLOW_PREFIX = "workflow:"
MAX_STEPS = 50
MCP_SEPARATOR = "__"
_FUNCTION_NAME = re.compile(r"[^A-Za-z0-9_-]")


def is_identifier(text: str) -> bool:
    """`IDENTIFIER_PATTERN` (letters of any script, digits and @ _ : -), at most 60 characters."""
    return 0 < len(text) <= MAX_IDENTIFIER_LENGTH and all(c.isalpha() or c.isdigit() or c in "@_:-" for c in text)


def tool_problem(tool: str) -> str | None:
    """Why `tool` is not a tool an agent may name, or None."""
    if tool in CATALOG_TOOLS:
        return None
    if tool.startswith(WORKFLOW_PREFIX):
        workflow = tool[len(WORKFLOW_PREFIX):]
        if is_identifier(workflow):
            return None
        return f"{tool!r} does not name a workflow identifier after {WORKFLOW_PREFIX!r}"
    return f"{tool!r} is not a tool: use one of {', '.join(CATALOG_TOOLS)} or {WORKFLOW_PREFIX}<workflow identifier>"


def function_name(*parts: str) -> str:
    """A model-facing tool name (OpenAI's `^[A-Za-z0-9_-]{1,64}$`) made of `parts`."""
    return _FUNCTION_NAME.sub("_", MCP_SEPARATOR.join(parts))[:64]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class McpServer(_Record):
    """`PUT /v1/mcp-servers/{id}`: an MCP server reached over streamable HTTP or a stdio subprocess."""

    transport: Literal["http", "stdio"]
    url: StrictStr | None = Field(default=None, max_length=2000, validate_default=True)
    command: list[StrictStr] | None = Field(default=None, min_length=1, max_length=100, validate_default=True)
    headersSecret: StrictStr | None = Field(default=None, min_length=1, max_length=MAX_SECRET_NAME_LENGTH,
                                            pattern=SECRET_NAME_PATTERN, validate_default=True)
    """A secret whose value is a JSON object of HTTP headers (`{"Authorization": "Bearer …"}`)."""
    timeoutSeconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        http = info.data.get("transport") == "http"
        if http and url is None:
            raise ValueError("transport http needs url")
        if not http and url is not None:
            raise ValueError("only transport http has a url")
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @field_validator("command")
    @classmethod
    def _argv(cls, command: list[str] | None, info: ValidationInfo) -> list[str] | None:
        stdio = info.data.get("transport") == "stdio"
        if stdio and command is None:
            raise ValueError("transport stdio needs command, an argv list")
        if not stdio and command is not None:
            raise ValueError("only transport stdio has a command")
        return command

    @field_validator("headersSecret")
    @classmethod
    def _http_only(cls, name: str | None, info: ValidationInfo) -> str | None:
        if name is not None and info.data.get("transport") != "http":
            raise ValueError("only transport http sends headers")
        return name


class Agent(_Record):
    """`PUT /v1/agents/{identifier}`: what an AI_AGENT node runs."""

    title: StrictStr = Field(default="", max_length=200)
    systemPrompt: StrictStr = Field(default="", max_length=100_000)
    provider: StrictStr | None = Field(default=None, min_length=1, max_length=100)
    model: StrictStr | None = Field(default=None, min_length=1, max_length=200)
    tools: list[StrictStr] = Field(default_factory=list, max_length=100)
    mcpServers: list[StrictStr] = Field(default_factory=list, max_length=20)
    maxSteps: int = Field(default=10, ge=1, le=MAX_STEPS)

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        problems = [p for p in map(tool_problem, tools) if p is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return tools

    @field_validator("mcpServers")
    @classmethod
    def _server_ids(cls, servers: list[str]) -> list[str]:
        bad = [s for s in servers if not is_identifier(s)]
        if bad:
            raise ValueError(f"not MCP server identifiers: {bad}")
        return servers
