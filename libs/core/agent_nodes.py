"""The config schemas of the `MCP` node (one tool of a registered MCP server, ProvenanceOne's `mcp`
step) and Port's `AI_AGENT` node (runs a stored agent's tool loop). The records they name are in
libs/core/agents.py; the actions are services/executor/actions/mcp.py and ai_agent.py."""

from __future__ import annotations

from typing import Any

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_TEMPLATE = {"type": "string", "pattern": r"\{\{"}

MCP: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "MCP config",
    "description": "Stepline extension: calls `tool` of the registered MCP server `server` "
    "(PUT /v1/mcp-servers/{id}) with `arguments` (templates rendered). Output: the tool's structured "
    "content, else its text; a tool error fails the node.",
    "type": "object",
    "required": ["type", "server", "tool"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "MCP"},
        "server": {"type": "string", "minLength": 1},
        "tool": {"type": "string", "minLength": 1},
        "arguments": {"anyOf": [{"type": "object"}, _TEMPLATE],
                      "errorMessage": "must be an object or a {{ template }}", "default": {}},
    },
}

AI_AGENT: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "AI_AGENT config",
    "description": "Runs the agent `agentIdentifier` (PUT /v1/agents/{identifier}) on `userPrompt`: model → "
    "tool calls → results → model, at most the agent's `maxSteps`. Output `{response, transcript, usage, "
    "toolCalls, invocationIdentifier}`.",
    "type": "object",
    "required": ["type", "agentIdentifier", "userPrompt"],
    "properties": {
        "type": {"const": "AI_AGENT"},
        "agentIdentifier": {"type": "string", "minLength": 1},
        "userPrompt": {"type": "string", "minLength": 1},
    },
}
