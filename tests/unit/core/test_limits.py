"""Quotas on definitions, outputs and logs (libs/core/limits.py), and templates in URL paths."""

from __future__ import annotations

from typing import Any

import pytest

from libs.core.errors import DefinitionError
from libs.core.limits import Limits, admit_definition, definition_issues, logs_problem, output_problem
from libs.core.templates import render
from libs.core.url_templates import encoded_path_templates, with_encoded_paths
from libs.core.waiting_nodes import render_config


def definition(*configs: dict[str, Any]) -> dict[str, Any]:
    nodes = [{"identifier": "t", "config": {"type": "SELF_SERVE_TRIGGER"}}]
    nodes += [{"identifier": f"n{i}", "config": c} for i, c in enumerate(configs)]
    return {"identifier": "wf", "nodes": nodes, "connections": []}


def test_nodes_per_definition() -> None:
    raw = definition(*[{"type": "NOOP"}] * 500)
    issues = definition_issues(raw, Limits())
    assert [(i.pointer, "at most 500 nodes" in i.message) for i in issues] == [("/nodes", True)]
    assert "STEPLINE_MAX_NODES_PER_DEFINITION" in issues[0].message
    assert definition_issues(definition(*[{"type": "NOOP"}] * 499), Limits()) == []


def test_definition_size() -> None:
    raw = definition({"type": "TRANSFORM", "expression": '"' + "x" * 2000 + '"'})
    issues = definition_issues(raw, Limits(max_definition_bytes=1000))
    assert issues[0].pointer == "" and "STEPLINE_MAX_DEFINITION_BYTES" in issues[0].message
    with pytest.raises(DefinitionError) as refused:
        admit_definition(raw, Limits(max_definition_bytes=1000))
    assert refused.value.issues == issues


def test_literal_foreach_items_and_concurrency_including_inline_nodes() -> None:
    foreach = {"type": "FOREACH", "items": list(range(11)), "concurrency": 5,
               "node": {"type": "KAFKA", "topic": "payments", "payload": {}}}
    limits = Limits(max_foreach_items=10, max_foreach_concurrency=4, kafka_topics_allow=("orders.*",))
    pointers = {i.pointer: i.message for i in definition_issues(definition(foreach), limits)}
    assert set(pointers) == {"/nodes/1/config/items", "/nodes/1/config/concurrency", "/nodes/1/config/node/topic"}
    assert "at most 10 items, got 11" in pointers["/nodes/1/config/items"]
    assert "STEPLINE_KAFKA_TOPICS_ALLOW" in pointers["/nodes/1/config/node/topic"]
    templated = {"type": "FOREACH", "items": "{{ .inputs.list }}", "concurrency": 2, "node": {"type": "NOOP"}}
    assert definition_issues(definition(templated), limits) == []


def test_kafka_topics_allow_list() -> None:
    limits = Limits(kafka_topics_allow=("orders.*", "audit"))
    raw = definition({"type": "KAFKA", "topic": "orders.created", "payload": {}}, {"type": "QUEUE_TRIGGER", "topic": "x"},
                     {"type": "KAFKA", "topic": "audit", "payload": {}}, {"type": "KAFKA", "topic": "{{ .inputs.t }}"})
    assert [i.pointer for i in definition_issues(raw, limits)] == ["/nodes/2/config/topic"]


def test_output_and_logs() -> None:
    limits = Limits(max_output_bytes=100, max_log_entries_per_node_run=3, max_log_bytes_per_node_run=200)
    assert output_problem({"a": "x" * 50}, limits) is None
    problem = output_problem({"a": "x" * 100}, limits)
    assert problem is not None and "over the limit of 100 (STEPLINE_MAX_OUTPUT_BYTES)" in problem
    entry = {"log": "hi"}
    assert logs_problem([entry], [entry, entry], limits) is None
    too_many = logs_problem([entry, entry], [entry, entry], limits)
    assert too_many is not None and "it has 2 and 2 more" in too_many
    too_big = logs_problem([], [{"log": "y" * 300}], limits)
    assert too_big is not None and "STEPLINE_MAX_LOG_BYTES_PER_NODE_RUN" in too_big


@pytest.mark.parametrize("url, context, expected", [
    ("https://h/items/{{ .id }}", {"id": "../admin"}, "https://h/items/..%2Fadmin"),
    ("https://h/items/{{ .id }}/x", {"id": ".."}, "https://h/items/%2E%2E/x"),
    ("https://h/{{ .id }}", {"id": "."}, "https://h/%2E"),
    ("https://h/a/{{ .n }}", {"n": 7}, "https://h/a/7"),
    ("https://h/a/{{ .n }}", {"n": None}, "https://h/a/"),
    ("https://h/a/{{ .id }}?q={{ .q }}#{{ .f }}", {"id": "a b", "q": "x&y=1", "f": "/z"}, "https://h/a/a%20b?q=x&y=1#/z"),
    ("{{ .base }}/repos/{{ .repo }}", {"base": "http://api:1/v3", "repo": "../.."}, "http://api:1/v3/repos/..%2F.."),
    ("http://{{ .host }}:8080/{{ .p }}", {"host": "svc", "p": "a/b"}, "http://svc:8080/a%2Fb"),
    ("https://h?next={{ .u }}", {"u": "/a/b"}, "https://h?next=/a/b"),
])
def test_templates_in_a_url_path_are_url_encoded(url: str, context: dict[str, Any], expected: str) -> None:
    assert render(encoded_path_templates(url), context) == expected
    assert render_config({"type": "WEBHOOK", "url": url}, context)["url"] == expected


def test_only_url_fields_of_request_nodes_are_rewritten() -> None:
    transform = {"type": "TRANSFORM", "expression": "{{ .a }}/{{ .b }}"}
    assert with_encoded_paths(transform) is transform
    notify = {"type": "NOTIFY", "channel": "webhook", "url": "http://h/{{ .a }}", "text": "/{{ .a }}"}
    assert render_config(notify, {"a": "x/y"}) == {**notify, "url": "http://h/x%2Fy", "text": "/x/y"}
