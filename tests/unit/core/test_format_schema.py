from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from port_deploy_example import deploy_service

from libs.core.definition import Connection, Node, RetryPolicy, Workflow
from libs.core.errors import Issue
from libs.core.format_schema import SCHEMA_ID, workflow_json_schema
from libs.core.node_kinds import NODE_TYPE_SCHEMAS
from libs.core.schema_dialect import issues, make_validator


def _check(doc: Any) -> list[Issue]:
    return issues(make_validator(workflow_json_schema()), doc, "", "")


def test_it_is_a_valid_draft_2020_12_schema_with_its_id() -> None:
    schema = workflow_json_schema()
    # (not check_schema: its `regex` format check would try ECMA `\p{L}` with Python's `re`)
    assert list(Draft202012Validator(Draft202012Validator.META_SCHEMA).iter_errors(schema)) == []
    assert schema["$id"] == SCHEMA_ID == "https://stepline.dev/schemas/workflow.schema.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] and schema["description"]
    json.dumps(schema)  # plain JSON, publishable as a file


def test_the_port_deploy_example_validates() -> None:
    assert _check(deploy_service()) == []


def test_a_node_of_an_unknown_type_does_not() -> None:
    doc = deploy_service()
    doc["nodes"][4]["config"]["type"] = "SEND_FAX"
    assert [i.pointer for i in _check(doc)] == ["/nodes/4/config/type"]


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (lambda d: d["nodes"][2]["config"].pop("url"), "/nodes/2/config/url"),
        (lambda d: d["nodes"][2]["config"].update(method="FETCH"), "/nodes/2/config/method"),
        (lambda d: d["nodes"][2].update(retry={"maxAttempts": 0}), "/nodes/2/retry/maxAttempts"),
        (lambda d: d["nodes"][2].update(onFailure="later"), "/nodes/2/onFailure"),
        (lambda d: d["nodes"][2].update(timeoutSeconds=0), "/nodes/2/timeoutSeconds"),
        (lambda d: d["nodes"][2].update(identifier="no spaces"), "/nodes/2/identifier"),
        (lambda d: d["connections"][0].update(fallback="yes"), "/connections/0/fallback"),
        (lambda d: d["connections"][0].pop("sourceIdentifier"), "/connections/0/sourceIdentifier"),
        (lambda d: d.pop("identifier"), "/identifier"),
    ],
)
def test_schema_violations_are_found_where_they_are(change: Any, pointer: str) -> None:
    doc = deploy_service()
    change(doc)
    assert pointer in [i.pointer for i in _check(doc)]


def test_unicode_letters_are_identifier_characters() -> None:
    doc = deploy_service()
    doc["identifier"] = "déployer-服务"
    assert _check(doc) == []


def test_the_older_and_later_condition_shapes_are_accepted() -> None:
    doc = deploy_service()
    config = doc["nodes"][1]["config"]
    config["outlets"] = config.pop("options")
    assert _check(doc) == []
    config["conditions"] = [dict(o, connectionIdentifier="c1") for o in config.pop("outlets")]
    config["defaultConnectionIdentifier"] = "c2"
    assert _check(doc) == []


def test_every_node_type_has_its_config_in_the_schema() -> None:
    schema = workflow_json_schema()
    assert set(schema["$defs"]["nodeConfig"]["properties"]["type"]["enum"]) == set(NODE_TYPE_SCHEMAS)
    for name in NODE_TYPE_SCHEMAS:
        assert f"config-{name}" in schema["$defs"]


def test_the_schema_lists_every_field_of_the_models() -> None:
    defs = workflow_json_schema()["$defs"]
    assert set(Node.model_fields) <= set(defs["node"]["properties"])
    assert set(Connection.model_fields) <= set(defs["connection"]["properties"])
    assert set(RetryPolicy.model_fields) == set(defs["retry"]["properties"])
    assert set(Workflow.model_fields) <= set(workflow_json_schema()["properties"])


def test_each_call_returns_an_independent_copy() -> None:
    first = workflow_json_schema()
    first["$defs"]["node"]["properties"].clear()
    assert workflow_json_schema()["$defs"]["node"]["properties"]


def test_published_schema_file_is_current() -> None:
    """docs/workflow.schema.json is what editors point at; regenerate it with
    `stepline schema > docs/workflow.schema.json` when the format changes."""
    import json
    from pathlib import Path

    published = json.loads((Path(__file__).parents[3] / "docs" / "workflow.schema.json").read_text())
    assert published == workflow_json_schema()
