"""UPSERT_ENTITY and EVENT_TRIGGER configs: schema and jq checks, each issue with its pointer."""

from __future__ import annotations

from typing import Any

import pytest

from libs.core.catalog import event_issues, is_entity_identifier
from libs.core.errors import Issue
from libs.core.node_kinds import config_issues
from libs.core.node_rules import node_issues
from libs.core.raw_view import NodeView

EVENT = {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"}


@pytest.mark.parametrize(
    ("config", "pointers"),
    [
        ({"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
          "mapping": {"identifier": "{{ .outputs.trigger.name }}", "team": ["a", "b"], "relations": {"domain": "x"},
                      "properties": "{{ .outputs.trigger.props }}", "icon": "Service"}}, []),
        ({"type": "UPSERT_ENTITY", "blueprintIdentifier": "{{ .inputs.blueprint }}",
          "mapping": {"identifier": "repo/api:v1", "properties": {}}}, []),
        ({"type": "UPSERT_ENTITY", "mapping": {"properties": {}}}, ["/blueprintIdentifier"]),
        ({"type": "UPSERT_ENTITY", "blueprintIdentifier": "ser vice", "mapping": {}},
         ["/blueprintIdentifier"]),  # mapping.properties is optional (Port)
        ({"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
          "mapping": {"identifier": "has space", "properties": [], "team": 3}},
         ["/mapping/identifier", "/mapping/properties", "/mapping/team"]),
        ({"type": "EVENT_TRIGGER", "event": EVENT}, []),
        ({"type": "EVENT_TRIGGER", "event": {"type": "TIMER_EXPIRED", "blueprintIdentifier": "service"}},
         ["/event/propertyIdentifier"]),
        ({"type": "EVENT_TRIGGER", "event": {"type": "TIMER_EXPIRED", "blueprintIdentifier": "service",
                                             "propertyIdentifier": "ttl"}}, []),
        ({"type": "EVENT_TRIGGER", "event": {"type": "ENTITY_CREATED"}}, ["/event/blueprintIdentifier"]),
        ({"type": "EVENT_TRIGGER", "event": EVENT, "condition": {"type": "JQ", "expressions": []}},
         ["/condition/expressions"]),
        ({"type": "EVENT_TRIGGER", "event": EVENT,
          "condition": {"type": "SQL", "expressions": ["true"], "combinator": "xor", "x": 1}},
         ["/condition/combinator", "/condition/type", "/condition/x"]),
    ],
)
def test_config_schemas(config: dict[str, Any], pointers: list[str]) -> None:
    assert [i.pointer for i in config_issues(config)] == pointers


def _node(config: dict[str, Any]) -> NodeView:
    return NodeView(index=0, identifier="on-change", type=config["type"], config=config, variables=None)


def test_condition_expressions_are_compiled_as_jq() -> None:
    config = {"type": "EVENT_TRIGGER", "event": EVENT,
              "condition": {"type": "JQ", "expressions": [".diff.after != null", ".diff | ]"], "combinator": "or"}}
    issues = node_issues(_node(config))
    assert [i.pointer for i in issues] == ["/nodes/0/config/condition/expressions/1"]
    assert issues[0].message.startswith("invalid jq expression")


def test_entity_identifiers() -> None:
    assert is_entity_identifier("github.com/org/repo:main")
    assert not is_entity_identifier("trailing\n")
    assert not is_entity_identifier("")


def test_event_issues_point_into_the_event() -> None:
    good = {"action": "DELETE", "context": {"blueprintIdentifier": "service", "entityIdentifier": "a"},
            "diff": {"before": {}}}
    assert event_issues(good) == []
    assert event_issues({**good, "resourceType": "entity"}, strict=False) == []
    assert event_issues({**good, "resourceType": "entity"}) == [
        Issue("/resourceType", "event.resourceType is not an allowed field")]
    assert [i.pointer for i in event_issues({**good, "diff": {}})] == ["/diff/before"]
