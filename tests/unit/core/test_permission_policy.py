"""Port's node-permission policy `{combinator, rules}`: its schema and its evaluation (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from libs.access.principal import Principal
from libs.access.trigger_permissions import may_start
from libs.core.permission_policy import matches, policy_issues

CONTEXTS = {"user": {"$identifier": "ada@example.com", "email": "ada@example.com", "role": "runner"},
            "userTeams": [], "form": {"env": "dev", "replicas": 3, "tags": [], "owner": "ada@example.com"}}


def rule(context: str, prop: str, operator: str, *value: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"property": {"context": context, "property": prop}, "operator": operator}
    if value:
        found["value"] = value[0]
    return found


@pytest.mark.parametrize(("one", "holds"), [
    (rule("form", "env", "=", "dev"), True),
    (rule("form", "env", "!=", "dev"), False),
    (rule("form", "env", "in", ["qa", "dev"]), True),
    (rule("form", "env", "notIn", ["qa", "dev"]), False),
    (rule("form", "replicas", ">", 2), True),
    (rule("form", "replicas", "<=", 2), False),
    (rule("form", "replicas", ">", "2"), False),  # a number is not ordered against a string
    (rule("form", "tags", "empty"), True),
    (rule("form", "missing", "notEmpty"), False),
    (rule("user", "email", "=", {"context": "form", "property": "owner"}), True),
    (rule("user", "role", "in", ["editor"]), False),
    (rule("userTeams", "name", "in", ["platform"]), False),  # Stepline has no teams
    (rule("userTeams", "name", "empty"), True),
])
def test_each_operator(one: dict[str, Any], holds: bool) -> None:
    assert policy_issues({"combinator": "and", "rules": [one]}) == []
    assert matches({"combinator": "and", "rules": [one]}, CONTEXTS) is holds


def test_combinators() -> None:
    yes, no = rule("form", "env", "=", "dev"), rule("form", "env", "=", "prod")
    assert matches({"combinator": "or", "rules": [no, yes]}, CONTEXTS)
    assert not matches({"combinator": "and", "rules": [no, yes]}, CONTEXTS)
    assert matches({"combinator": "and", "rules": []}, CONTEXTS)
    assert not matches({"combinator": "or", "rules": []}, CONTEXTS)


def test_malformed_policies_are_named() -> None:
    found = policy_issues({"combinator": "xor", "rules": [rule("form", "env", "=")], "extra": 1})
    assert {i.pointer for i in found} == {"/extra", "/combinator", "/rules/0"}
    assert policy_issues({"combinator": "and", "rules": [rule("form", "env", "in", "dev")]}) != []


def test_static_lists_first_then_the_policy_owners_and_admins_always() -> None:
    config = {"permissions": {"users": ["rita@example.com"], "policy": {"combinator": "and", "rules": [
        rule("form", "env", "=", "dev")]}}}
    rob, rita = Principal("k", "rob@example.com", "runner"), Principal("k", "rita@example.com", "runner")
    assert may_start(config, rob, {"env": "dev"}) and not may_start(config, rob, {"env": "prod"})
    assert may_start(config, rita, {"env": "prod"})
    assert may_start(config, Principal("k", "x", "admin"), {"env": "prod"})
    assert not may_start({"permissions": {}}, rob) and may_start({}, rob)
