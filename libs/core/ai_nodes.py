"""The `AI` node's config schema and its guardrails' (a node's `guardrails`, and the workspace-wide
setting `ai_guardrails` of the same shape). Port's fields plus Stepline's `maxTokens` and `guardrails`.
The executor's action is services/executor/actions/ai.py; the scanners services/executor/ai/guardrails.py."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from libs.core import pointer as jp
from libs.core.errors import Issue

DIALECT = "https://json-schema.org/draft/2020-12/schema"
PII_KINDS: tuple[str, ...] = ("email", "card", "iban", "phone")
SCOPES = ("input", "output", "both")

_WORDS: dict[str, Any] = {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 500}

GUARDRAILS: dict[str, Any] = {
    "type": "object",
    "description": "Scanners on the prompts sent to the model (input) and its answers (output); each "
    "decision is a node log line, and a blocked call fails the node naming the scanner.",
    "additionalProperties": False,
    "properties": {
        "pii": {
            "type": "object", "additionalProperties": False,
            "description": "Emails, card numbers (Luhn-checked), IBANs and phone numbers.",
            "properties": {
                "action": {"enum": ["redact", "block"], "default": "redact"},
                "kinds": {"type": "array", "items": {"enum": list(PII_KINDS)}, "uniqueItems": True},
                "scope": {"enum": list(SCOPES), "default": "both"},
            },
        },
        "secrets": {"type": "boolean", "default": True,
                    "description": "Block a prompt that carries a secret value (or a well-known key format); "
                                   "only the workspace setting can turn it off."},
        "bannedKeywords": {**_WORDS, "description": "Words or phrases (any case) that block input and output."},
        "bannedTopics": {**_WORDS, "description": "Topics named by words or phrases; same as bannedKeywords."},
        "promptInjection": {"enum": ["block", "warn", "off"], "default": "block",
                            "description": "Injection markers in tool results (ignore previous instructions, …); "
                                           "only the workspace setting can relax it."},
    },
}

AI: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "AI config",
    "description": "One model call (Port's AI node): `userPrompt` and `systemPrompt` (templates) to the "
    "`provider` (a configured one; default: the first) and `model`. Output `{response, invocationIdentifier, "
    "usage: {inputTokens, outputTokens}, toolCalls}`; with `outputSchema` the answer is JSON validated "
    "against it (one repair attempt) and `response` is the object.",
    "type": "object",
    "required": ["type", "userPrompt"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "AI"},
        "userPrompt": {"type": "string", "minLength": 1},
        "systemPrompt": {"type": "string"},
        "provider": {"type": "string", "minLength": 1, "description": "A name of STEPLINE_AI_PROVIDERS."},
        "model": {"type": "string", "minLength": 1, "description": "Overrides the provider's model."},
        "tools": {"type": "array", "items": {"type": "string", "minLength": 1},
                  "description": "Regular expressions matched against the names of the tools the step may call."},
        "mcpServers": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "outputSchema": {"type": "object", "description": "The JSON Schema the answer must satisfy."},
        "maxTokens": {"type": "integer", "minimum": 1,
                      "description": "Token budget of this step: input plus output tokens of all its calls."},
        "guardrails": GUARDRAILS,
    },
}


def ai_issues(config: dict[str, Any], pointer: str) -> list[Issue]:
    """What the schema cannot say: `outputSchema` is itself a valid JSON Schema, `tools` compile."""
    found: list[Issue] = []
    schema = config.get("outputSchema")
    if isinstance(schema, dict):
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            found.append(Issue(jp.join(pointer, "outputSchema"), f"not a valid JSON Schema: {exc.message}"))
    for index, pattern in enumerate(config.get("tools") or ()):
        try:
            re.compile(str(pattern))
        except re.error as exc:
            found.append(Issue(jp.join(pointer, "tools", index), f"not a regular expression: {exc}"))
    return found
