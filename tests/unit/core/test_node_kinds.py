"""The node-kind registry, pinned: every type validation accepts has a kind, and the sets derived from
it are exactly the literal sets the engine used before the registry held them."""

from __future__ import annotations

import pytest

from libs.core.node_kinds import (
    ACTION_TYPES,
    ALWAYS_WAITING_TYPES,
    ENGINE_COMPLETED_TYPES,
    KINDS,
    NODE_TYPE_SCHEMAS,
    TIMER_KINDS,
    TRIGGER_TYPES,
    Timed,
    completed_by,
    config_issues,
    kind,
)

ACCEPTED = {
    "AI", "AI_AGENT", "APPROVAL", "CONDITION", "DELAY", "EVENT_TRIGGER", "FOREACH", "INPUT", "INTEGRATION_ACTION",
    "KAFKA", "MCP", "NOOP", "NOTIFY", "QUEUE_TRIGGER", "SCHEDULE_TRIGGER", "SELF_SERVE_TRIGGER", "SUB_WORKFLOW",
    "TRANSFORM", "UPSERT_ENTITY", "WEBHOOK", "WEBHOOK_TRIGGER"}


@pytest.mark.parametrize("node_type", sorted(ACCEPTED))
def test_every_type_validation_accepts_has_a_kind_whose_schema_is_its_own(node_type: str) -> None:
    assert not [i for i in config_issues({"type": node_type}) if "unknown node type" in i.message]
    assert kind(node_type).type == node_type
    assert kind(node_type).schema["properties"]["type"] == {"const": node_type}
    assert NODE_TYPE_SCHEMAS[node_type] is kind(node_type).schema


def test_a_type_without_a_kind_is_refused_by_validation_and_by_the_lookup() -> None:
    assert set(KINDS) == ACCEPTED
    assert "unknown node type 'SLEEP'" in config_issues({"type": "SLEEP"})[0].message
    with pytest.raises(KeyError):
        kind("SLEEP")
    assert completed_by("SLEEP") is None


def test_the_derived_sets_are_the_ones_the_engine_used_before() -> None:
    assert TRIGGER_TYPES == {"SELF_SERVE_TRIGGER", "WEBHOOK_TRIGGER", "EVENT_TRIGGER", "SCHEDULE_TRIGGER", "QUEUE_TRIGGER"}
    assert ACTION_TYPES == ACCEPTED - TRIGGER_TYPES
    assert ENGINE_COMPLETED_TYPES == {"DELAY", "APPROVAL", "INPUT", "SUB_WORKFLOW", "FOREACH"}
    assert ALWAYS_WAITING_TYPES == {"DELAY", "APPROVAL", "INPUT", "SUB_WORKFLOW"}
    assert TIMER_KINDS == {"delay", "approval-sla"}


def test_who_completes_a_waiting_node_and_what_the_scheduler_keeps_for_it() -> None:
    assert {t: k.completed_by for t, k in KINDS.items() if k.completed_by} == {
        "DELAY": "timer", "APPROVAL": "decision", "INPUT": "answer", "SUB_WORKFLOW": "child_runs",
        "FOREACH": "child_runs"}
    assert {t: k.timed for t, k in KINDS.items() if k.timed} == {
        "DELAY": Timed("delay", "resumeAt"), "APPROVAL": Timed("approval-sla", "deadline")}
    assert {t: k.deferred for t, k in KINDS.items() if k.deferred} == {"FOREACH": ("node",)}


def test_where_a_config_reads_secrets_holds_bare_jq_or_a_url() -> None:
    assert {t for t, k in KINDS.items() if k.sends} == {"WEBHOOK", "NOTIFY", "INTEGRATION_ACTION"}
    assert {t: k.secret_fields for t, k in KINDS.items() if k.secret_fields} == {"KAFKA": ("headers",)}
    assert {t: k.bare_jq for t, k in KINDS.items() if k.bare_jq} == {
        "TRANSFORM": ("expression",), "EVENT_TRIGGER": ("condition",)}
    assert {t: k.url_fields for t, k in KINDS.items() if k.url_fields} == {"WEBHOOK": ("url",), "NOTIFY": ("url",)}


@pytest.mark.parametrize(("config", "patched"), [
    ({"type": "WEBHOOK", "synchronized": False}, True),
    ({"type": "WEBHOOK", "synchronized": True}, False),
    ({"type": "WEBHOOK"}, False),
    ({"type": "KAFKA", "waitForCompletion": True}, True),
    ({"type": "KAFKA"}, False),
    ({"type": "INTEGRATION_ACTION", "integrationProvider": "GITHUB"}, False),
    ({"type": "INTEGRATION_ACTION", "integrationProvider": "github-ocean"}, False),
    ({"type": "INTEGRATION_ACTION", "integrationProvider": "gitlab"}, True),
    ({"type": "FOREACH", "workflowIdentifier": "child"}, False),
    ({"type": "DELAY", "seconds": 1}, False),
    ({"type": "NOOP"}, False),
])
def test_which_waiting_nodes_a_patch_completes(config: dict[str, object], patched: bool) -> None:
    assert kind(str(config["type"])).completed_from_outside(config) is patched


def test_a_foreach_waits_only_over_a_workflow() -> None:
    assert kind("FOREACH").waits({"workflowIdentifier": "child"})
    assert not kind("FOREACH").waits({"node": {"type": "NOOP"}})
