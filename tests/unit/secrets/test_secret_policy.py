"""Where a definition may read `.secrets` (refused elsewhere with a pointer), which secrets a node
sees, and masking of the encoded forms of a value."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from libs.core.errors import DefinitionError
from libs.core.redaction import redact_text, redact_value, secret_values
from libs.core.secret_refs import NAME_IT, WHERE_ALLOWED, SecretRefs, readable_refs, secret_issues
from libs.core.validation import parse_workflow

TOKEN = "tok-7Hq2xP9-very-secret"
TRIGGER = {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}}


def issues(node: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i.pointer, i.message) for i in secret_issues(node["config"]["type"], node["config"],
                                                         node.get("variables"), "/nodes/1")]


@pytest.mark.parametrize("node, pointer", [
    ({"config": {"type": "TRANSFORM", "expression": ".secrets.t"}}, "/nodes/1/config/expression"),
    ({"config": {"type": "TRANSFORM", "output": {"a": "x {{ .secrets.t | @base64 }}"}}}, "/nodes/1/config/output/a"),
    ({"config": {"type": "CONDITION", "options": [{"identifier": "a", "expression": ".run.id != null"},
                                                  {"identifier": "b", "expression": '.secrets["t"] == "x"'}]}},
     "/nodes/1/config/options/1/expression"),
    ({"config": {"type": "NOOP"}, "variables": {"v": "{{ .secrets.t }}"}}, "/nodes/1/variables/v"),
    ({"config": {"type": "KAFKA", "topic": "t", "payload": {"p": "{{ .secrets.t }}"}}}, "/nodes/1/config/payload/p"),
    ({"config": {"type": "FOREACH", "items": "{{ [.secrets.t] }}", "node": {"type": "NOOP"}}}, "/nodes/1/config/items"),
    ({"config": {"type": "FOREACH", "items": [1], "node": {"type": "TRANSFORM", "output": "{{ .secrets.t }}"}}},
     "/nodes/1/config/node/output"),
    ({"config": {"type": "APPROVAL", "assignees": ["a"], "message": "{{ .secrets.t }}"}}, "/nodes/1/config/message"),
])
def test_secrets_outside_request_fields_are_refused_with_a_pointer(node: dict[str, Any], pointer: str) -> None:
    [(where, message)] = issues(node)
    assert where == pointer and message.startswith(WHERE_ALLOWED)


@pytest.mark.parametrize("node", [
    {"config": {"type": "WEBHOOK", "url": "http://h/{{ .secrets.path }}", "headers": {"A": "{{ .secrets.t }}"}}},
    {"config": {"type": "NOTIFY", "channel": "slack", "url": "{{ .secrets.hook }}", "text": "hi"}},
    {"config": {"type": "KAFKA", "topic": "t", "headers": {"auth": "{{ .secrets.t }}"}, "payload": {"n": 1}}},
    {"config": {"type": "FOREACH", "items": [1], "node": {"type": "WEBHOOK", "url": "http://h",
                                                         "headers": {"A": "{{ .secrets.t }}"}}}},
    {"config": {"type": "TRANSFORM", "output": {"note": "plain text about .secrets, not jq"}}},
    {"config": {"type": "TRANSFORM", "expression": ".outputs.secrets.x"}},
])
def test_secrets_in_request_fields_are_accepted(node: dict[str, Any]) -> None:
    assert issues(node) == []


@pytest.mark.parametrize("expression", ["{{ .secrets | keys }}", "{{ .secrets[.inputs.name] }}",
                                        "{{ . as $c | $c.secrets.t }}"])
def test_a_node_must_name_the_secrets_it_reads(expression: str) -> None:
    node = {"config": {"type": "WEBHOOK", "url": "http://h", "headers": {"A": expression}}}
    assert issues(node) == [("/nodes/1/config/headers/A", NAME_IT)]


def test_a_node_is_given_only_the_named_secrets_of_its_request_fields() -> None:
    kafka = {"type": "KAFKA", "topic": "t", "headers": {"a": "{{ .secrets.h }}"}, "payload": "{{ .secrets.p }}"}
    assert readable_refs("KAFKA", kafka) == SecretRefs(frozenset({"h"}))
    assert readable_refs("TRANSFORM", {"type": "TRANSFORM", "expression": ".secrets.t"}) == SecretRefs()
    webhook = {"type": "WEBHOOK", "url": "http://h", "headers": {"A": "{{ .secrets.t }} {{ .secrets | keys }}"}}
    assert readable_refs("WEBHOOK", webhook) == SecretRefs(frozenset({"t"}))


def test_saving_a_transform_that_reads_a_secret_is_refused() -> None:
    definition = {"identifier": "leak", "nodes": [TRIGGER, {"identifier": "x", "config": {
        "type": "TRANSFORM", "expression": '.secrets.token | explode'}}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "x"}]}
    with pytest.raises(DefinitionError) as caught:
        parse_workflow(definition)
    assert [i.pointer for i in caught.value.issues] == ["/nodes/1/config/expression"]


def basic(prefix: bytes, suffix: bytes = b"") -> str:
    return base64.b64encode(prefix + TOKEN.encode() + suffix).decode()


@pytest.mark.parametrize("shown", [
    TOKEN, TOKEN.upper(), TOKEN.lower(), base64.b64encode(TOKEN.encode()).decode(),
    base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("="), TOKEN.encode().hex(), TOKEN.encode().hex().upper(),
    quote(TOKEN, safe=""), quote_plus(TOKEN + " x"), json.dumps(TOKEN + "\u00e9")[1:-1], json.dumps({"t": TOKEN}),
])
def test_encoded_forms_are_masked(shown: str) -> None:
    assert TOKEN.lower() not in redact_text(f"got {shown}!", secret_values([TOKEN])).lower()
    assert redact_text(f"got {shown}!", secret_values([TOKEN])) != f"got {shown}!"


@pytest.mark.parametrize("prefix", [b"u:", b"us:", b"use:"])
def test_base64_of_a_longer_text_is_masked_at_every_alignment(prefix: bytes) -> None:
    encoded = basic(prefix, b"!")
    masked = redact_text(f"Basic {encoded}", secret_values([TOKEN]))
    assert "***" in masked and len(masked) < len(encoded)
    visible = masked.removeprefix("Basic ").split("***")
    assert all(len(part) <= 8 for part in visible), visible


def test_spelled_out_values_are_masked_whole() -> None:
    values = secret_values([TOKEN])
    output = {"codes": [ord(c) for c in TOKEN], "chars": list(TOKEN), "other": [1, 2, 3], "words": ["a", "b"]}
    assert redact_value(output, values) == {"codes": "***", "chars": "***", "other": [1, 2, 3], "words": ["a", "b"]}


def test_short_values_mask_only_themselves() -> None:
    values = secret_values(["abc"])
    assert redact_text("abc YWJj 616263", values) == "*** YWJj 616263"
