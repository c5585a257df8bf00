from __future__ import annotations

from typing import Any

import pytest

from libs.core.errors import Issue
from libs.core.node_kinds import NODE_TYPE_SCHEMAS, TRIGGER_TYPES, config_issues, config_validator, known_node_types

DESIGN_NODE_TYPES = [
    "AI", "AI_AGENT", "APPROVAL", "CONDITION", "DELAY", "EVENT_TRIGGER", "FOREACH", "INPUT", "INTEGRATION_ACTION", "KAFKA", "MCP",
    "NOOP", "NOTIFY", "QUEUE_TRIGGER", "SCHEDULE_TRIGGER", "SELF_SERVE_TRIGGER", "SUB_WORKFLOW", "TRANSFORM",
    "UPSERT_ENTITY", "WEBHOOK", "WEBHOOK_TRIGGER"]


def test_the_registry_covers_every_node_type_of_the_format() -> None:
    assert known_node_types() == DESIGN_NODE_TYPES


def test_every_trigger_type_has_a_schema() -> None:
    assert TRIGGER_TYPES <= set(known_node_types())


@pytest.mark.parametrize("name", sorted(NODE_TYPE_SCHEMAS))
def test_every_schema_requires_its_type_constant(name: str) -> None:
    schema = NODE_TYPE_SCHEMAS[name]
    assert "type" in schema["required"]
    assert schema["properties"]["type"] == {"const": name}
    assert config_issues({"type": name, **_minimal(name)}) == []


def _minimal(name: str) -> dict[str, Any]:
    minimal: dict[str, dict[str, Any]] = {
        "SELF_SERVE_TRIGGER": {},
        "WEBHOOK": {"url": "https://x"},
        "CONDITION": {"options": [{"identifier": "a", "expression": "true"}]},
        "TRANSFORM": {"expression": "."},
        "NOOP": {},
        "WEBHOOK_TRIGGER": {"secretName": "hook-key"},
        "KAFKA": {"topic": "orders", "payload": {}},
        "NOTIFY": {"channel": "slack", "url": "https://x", "text": "hi"},
        "INTEGRATION_ACTION": {"integrationProvider": "GITHUB", "tokenSecret": "t",
                               "integrationActionExecutionProperties": {"repo": "o/r", "workflowId": "d.yml"}},
        "UPSERT_ENTITY": {"blueprintIdentifier": "service", "mapping": {"properties": {}}},
        "EVENT_TRIGGER": {"event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "service"}},
        "SCHEDULE_TRIGGER": {"intervalSeconds": 60},
        "QUEUE_TRIGGER": {"topic": "orders"},
        "DELAY": {"seconds": 1},
        "APPROVAL": {"assignees": ["a@example.com"], "message": "ok?"},
        "SUB_WORKFLOW": {"workflowIdentifier": "child"},
        "FOREACH": {"items": [], "node": {"type": "NOOP"}},
        "INPUT": {"outlets": [{"identifier": "ok"}]},
        "AI": {"userPrompt": "Summarise {{ .inputs.text }}"},
        "AI_AGENT": {"agentIdentifier": "helper", "userPrompt": "hi"},
        "MCP": {"server": "tools", "tool": "echo", "arguments": {}},
    }
    return minimal[name]


def test_validators_are_compiled_once() -> None:
    assert config_validator("WEBHOOK") is config_validator("WEBHOOK")


def test_port_types_allow_fields_stepline_does_not_implement_but_its_own_do_not() -> None:
    assert config_issues({"type": "WEBHOOK", "url": "https://x", "onTimeout": "continue"}) == []
    assert config_issues({"type": "SELF_SERVE_TRIGGER", "published": True, "variant": "DEFAULT"}) == []
    assert config_issues({"type": "NOOP", "x": 1}) == [Issue("/x", "config.x is not an allowed field")]
    assert config_issues({"type": "TRANSFORM", "expression": ".", "x": 1}) == [
        Issue("/x", "config.x is not an allowed field")
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"type": "TRANSFORM", "output": {"a": "{{ .x }}"}}, []),
        ({"type": "TRANSFORM", "output": None}, []),
        ({"type": "TRANSFORM", "expression": ".", "output": 1},
         [Issue("", "config needs exactly one of `expression` and `output`")]),
        ({"type": "WEBHOOK", "url": ""}, [Issue("/url", "config.url must be at least 1 characters long")]),
        ({"type": "WEBHOOK", "url": "https://x", "body": [1, "{{ .a }}"], "agent": True}, []),
        ({"type": "SELF_SERVE_TRIGGER", "actionCardButtonText": "Go"}, []),
        ({"type": "SELF_SERVE_TRIGGER", "actionCardButtonText": "Go "},
         [Issue("/actionCardButtonText",
                "config.actionCardButtonText must be 1–15 characters with no leading or trailing whitespace")]),
        ({"type": "SELF_SERVE_TRIGGER", "userInputs": {}},
         [Issue("/userInputs/properties", "config.userInputs.properties is required")]),
        ({"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}, "required": {"jqQuery": "[]"}}}, []),
        ({"type": "CONDITION", "options": [{"identifier": "a"}]},
         [Issue("/options/0/expression", "config.options[0].expression is required")]),
    ],
)
def test_config_cases(config: dict[str, Any], expected: list[Issue]) -> None:
    assert config_issues(config) == expected


def test_a_config_that_is_not_an_object() -> None:
    assert config_issues("WEBHOOK", "/nodes/1/config") == [Issue("/nodes/1/config", "config must be an object")]
