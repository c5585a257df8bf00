from __future__ import annotations

from typing import Any

import pytest
from port_deploy_example import deploy_service

from libs.core.errors import InputError, Issue
from libs.core.inputs import input_schema, user_inputs_issues, validate_inputs


def _deploy_inputs() -> dict[str, Any]:
    user_inputs: dict[str, Any] = deploy_service()["nodes"][0]["config"]["userInputs"]
    return user_inputs


def _problems(user_inputs: dict[str, Any], inputs: Any) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as caught:
        validate_inputs(user_inputs, inputs)
    return [(i.pointer, i.message) for i in caught.value.issues]


VALID = {"service": "payments", "version": "1.2.3", "environment": "staging"}


def test_valid_inputs_are_returned() -> None:
    assert validate_inputs(_deploy_inputs(), dict(VALID)) == VALID


def test_a_value_outside_the_enum() -> None:
    assert _problems(_deploy_inputs(), {**VALID, "environment": "qa"}) == [
        ("/inputs/environment", "inputs.environment must be one of development, staging, production")
    ]


def test_a_value_of_the_wrong_type() -> None:
    assert _problems(_deploy_inputs(), {**VALID, "version": 2}) == [
        ("/inputs/version", "inputs.version must be a string")
    ]


def test_a_missing_required_input() -> None:
    inputs = {k: v for k, v in VALID.items() if k != "service"}
    assert _problems(_deploy_inputs(), inputs) == [("/inputs/service", "inputs.service is required")]


def test_an_undeclared_input_is_rejected() -> None:
    assert _problems(_deploy_inputs(), {**VALID, "colour": "red"}) == [
        ("/inputs/colour", "unknown input 'colour'; declared inputs: service, version, environment")
    ]


@pytest.mark.parametrize("inputs", [["a"], "text", 3])
def test_inputs_that_are_not_an_object(inputs: Any) -> None:
    assert _problems(_deploy_inputs(), inputs) == [("/inputs", "inputs must be an object")]


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(_deploy_inputs(), {"version": 1, "environment": "qa", "extra": True})
    assert [p for p, _ in problems] == [
        "/inputs/extra", "/inputs/environment", "/inputs/service", "/inputs/version"
    ]


def test_no_inputs_at_all_is_an_empty_object() -> None:
    assert validate_inputs({"properties": {"dry_run": {"type": "boolean", "default": False}}}, None) == {
        "dry_run": False
    }
    assert validate_inputs({}, {}) == {}
    assert _problems({}, {"x": 1}) == [("/inputs/x", "unknown input 'x'; declared inputs: none")]


def test_literal_defaults_are_applied_and_jq_defaults_skipped() -> None:
    user_inputs = {
        "properties": {
            "replicas": {"type": "number", "default": 2},
            "labels": {"type": "array", "items": {"type": "string"}, "default": ["a"]},
            "owner": {"type": "string", "format": "user", "default": {"jqQuery": ".trigger.by.user.email"}},
        },
        "required": ["replicas"],
    }
    result = validate_inputs(user_inputs, {})
    assert result == {"replicas": 2, "labels": ["a"]}
    result["labels"].append("b")
    assert user_inputs["properties"]["labels"]["default"] == ["a"]  # type: ignore[index]
    assert validate_inputs(user_inputs, {"replicas": 5}) == {"replicas": 5, "labels": ["a"]}


def test_port_only_keywords_and_formats_do_not_get_in_the_way() -> None:
    user_inputs = {
        "properties": {
            "service": {
                "type": "string", "format": "entity", "blueprint": "service", "title": "Service",
                "dataset": {"combinator": "and", "rules": [{"property": "team", "operator": "=",
                                                            "value": {"jqQuery": ".user.team"}}]},
                "visible": {"jqQuery": ".form.env != null"}, "icon": "Service",
            },
            "owner": {"type": "string", "format": "user"},
            "team": {"type": "string", "format": "team"},
            "manifest": {"type": "string", "format": "yaml"},
            "notes": {"type": "string", "format": "multi-line", "enumColors": {"a": "red"}},
            "readme": {"type": "string", "format": "markdown", "dependsOn": ["service"]},
            "link": {"type": "object", "format": "labeled-url"},
            "tier": {"type": "string", "enum": {"jqQuery": "[\"a\"]"}},
            "config": {"type": "object", "properties": {"a": {"type": "string"}}, "required": {"jqQuery": "[]"}},
        },
        "required": {"jqQuery": "[\"service\"]"},
        "order": ["service", "owner"],
    }
    inputs = {
        "service": "payments", "owner": "ana@example.com", "team": "platform", "manifest": "a: 1",
        "notes": "x\ny", "readme": "# hi", "link": {"url": "https://x", "displayText": "x"},
        "tier": "anything", "config": {},
    }
    assert validate_inputs(user_inputs, inputs) == inputs
    assert validate_inputs(user_inputs, {}) == {}  # a jq `required` is Port's form's business


@pytest.mark.parametrize(
    ("spec", "good", "bad", "message"),
    [
        ({"type": "string", "format": "email"}, "ana@example.com", "ana", "must be a valid email"),
        ({"type": "string", "format": "date-time"}, "2026-01-28T10:00:00Z", "yesterday", "must be a valid date-time"),
        ({"type": "string", "format": "url"}, "https://example.com/x", "example", "must be a valid url"),
        ({"type": "number", "minimum": 1, "maximum": 10}, 10, 11, "must be <= 10"),
        ({"type": "number"}, 1.5, True, "must be a number"),
        ({"type": "string", "minLength": 2}, "ab", "a", "must be at least 2 characters long"),
        ({"type": "boolean"}, False, "false", "must be a boolean"),
    ],
)
def test_checked_constraints(spec: dict[str, Any], good: Any, bad: Any, message: str) -> None:
    user_inputs = {"properties": {"x": spec}}
    assert validate_inputs(user_inputs, {"x": good}) == {"x": good}
    assert _problems(user_inputs, {"x": bad}) == [("/inputs/x", f"inputs.x {message}")]


def test_nested_problems_point_inside_the_input() -> None:
    user_inputs = {
        "properties": {
            "regions": {"type": "array", "items": {"type": "string", "enum": ["eu", "us"]}, "uniqueItems": True},
            "limits": {"type": "object", "properties": {"cpu": {"type": "number"}}, "required": ["cpu"],
                       "additionalProperties": False},
        }
    }
    problems = _problems(user_inputs, {"regions": ["eu", "mars"], "limits": {"gpu": 1}})
    assert problems == [
        ("/inputs/limits/cpu", "inputs.limits.cpu is required"),
        ("/inputs/limits/gpu", "inputs.limits.gpu is not an allowed field"),
        ("/inputs/regions/1", "inputs.regions[1] must be one of eu, us"),
    ]


def test_the_error_message_summarises_the_issues() -> None:
    with pytest.raises(InputError) as caught:
        validate_inputs(_deploy_inputs(), {**VALID, "environment": "qa"})
    assert caught.value.message == "invalid inputs: inputs.environment must be one of development, staging, production"
    assert caught.value.code == "invalid_inputs"


def test_input_schema_drops_jq_queries() -> None:
    schema = input_schema({"properties": {"a": {"type": "string", "default": {"jqQuery": "1"}}},
                           "required": {"jqQuery": "[]"}})
    assert schema == {"type": "object", "properties": {"a": {"type": "string"}}, "required": []}


def test_user_inputs_issues_checks_names_and_schemas() -> None:
    user_inputs = {
        "properties": {"a": {"type": "number", "minimum": "low"}},
        "required": ["a", "b"],
        "order": ["c", "a"],
    }
    assert user_inputs_issues(user_inputs, "/nodes/0/config/userInputs") == [
        Issue("/nodes/0/config/userInputs/required/1", "required names an undeclared input 'b'"),
        Issue("/nodes/0/config/userInputs/order/0", "order names an undeclared input 'c'"),
        Issue("/nodes/0/config/userInputs/properties/a/minimum", "userInputs.properties.a.minimum must be a number"),
    ]
