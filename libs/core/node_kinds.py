"""The node-kind registry: one `NodeKind` per node type, holding every fact the engine branches on.

A new node type is its config schema (node_types.py or a module of its own), one entry in `KINDS`,
and its action in the executor (`services/executor/actions/registry.py`, checked against this
registry when the executor starts). Everything else reads the registry: validation (schemas,
triggers), the executor (what it renders later), the scheduler (which waits it arms), the API (which
waiting node runs a PATCH may not complete), the engine's log lines and the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from jsonschema.protocols import Validator

from libs.core import pointer as jp
from libs.core.agent_nodes import AI_AGENT, MCP
from libs.core.ai_nodes import AI
from libs.core.catalog_nodes import EVENT_TRIGGER, UPSERT_ENTITY
from libs.core.errors import Issue
from libs.core.input_node import INPUT
from libs.core.node_types import (
    APPROVAL,
    CONDITION,
    DELAY,
    FOREACH,
    GITHUB_PROVIDERS,
    INTEGRATION_ACTION,
    KAFKA,
    NOOP,
    NOTIFY,
    QUEUE_TRIGGER,
    SCHEDULE_TRIGGER,
    SELF_SERVE_TRIGGER,
    SUB_WORKFLOW,
    TRANSFORM,
    WEBHOOK,
    WEBHOOK_TRIGGER,
)
from libs.core.schema_dialect import issues, make_validator

Completer = Literal["timer", "decision", "answer", "child_runs"]
"""How the engine itself completes a WAITING node run: its stored timer, a person's approval
decision, a person's INPUT answers, the end of its child runs."""
Config = Mapping[str, Any]


def never(config: Config) -> bool:
    return False


def always(config: Config) -> bool:
    return True


@dataclass(frozen=True)
class Timed:
    """A waiting node run the scheduler keeps a stored timer for: the timer's kind, and the field
    of the waiting output that says when it falls due."""

    timer: str
    due_field: str


@dataclass(frozen=True)
class NodeKind:
    type: str
    schema: Mapping[str, Any]
    """The JSON Schema of the node's `config`."""
    trigger: bool = False
    """A trigger node starts runs; the executor never runs it."""
    waits: Callable[[Config], bool] = never
    """Whether a node with this config waits after its attempt, for the engine or for a PATCH."""
    completed_by: Completer | None = None
    """Who completes it once it waits; None: an outside caller, with a PATCH of its node run."""
    timed: Timed | None = None
    """The stored timer the scheduler keeps while it waits (a DELAY's end, an APPROVAL's SLA)."""
    deferred: tuple[str, ...] = ()
    """Config fields its action renders itself, later (not with the rest of the config)."""
    sends: bool = False
    """It sends a request: any field of its config may read secrets."""
    secret_fields: tuple[str, ...] = ()
    """The only config fields that may read secrets, for a node that does not send."""
    bare_jq: tuple[str, ...] = ()
    """Config fields holding bare jq, not `{{ }}` templates (besides CONDITION options' `expression`)."""
    url_fields: tuple[str, ...] = ()
    """Config fields holding a request URL, whose path templates are URL-encoded (url_templates.py)."""

    def completed_from_outside(self, config: Config) -> bool:
        """The node's action starts work that an outside caller completes (PATCH of its node run)."""
        return self.completed_by is None and self.waits(config)


def _unsynchronized(config: Config) -> bool:
    return config.get("synchronized") is False


def _awaits_completion(config: Config) -> bool:
    return config.get("waitForCompletion") is True


def _run_by_a_worker(config: Config) -> bool:
    return config.get("integrationProvider") not in GITHUB_PROVIDERS


def _over_a_workflow(config: Config) -> bool:
    return "workflowIdentifier" in config


def _kinds(*kinds: NodeKind) -> Mapping[str, NodeKind]:
    return {k.type: k for k in kinds}


KINDS: Mapping[str, NodeKind] = _kinds(
    NodeKind("SELF_SERVE_TRIGGER", SELF_SERVE_TRIGGER, trigger=True),
    NodeKind("WEBHOOK_TRIGGER", WEBHOOK_TRIGGER, trigger=True),
    NodeKind("EVENT_TRIGGER", EVENT_TRIGGER, trigger=True, bare_jq=("condition",)),
    NodeKind("SCHEDULE_TRIGGER", SCHEDULE_TRIGGER, trigger=True),
    NodeKind("QUEUE_TRIGGER", QUEUE_TRIGGER, trigger=True),
    NodeKind("WEBHOOK", WEBHOOK, waits=_unsynchronized, sends=True, url_fields=("url",)),
    NodeKind("CONDITION", CONDITION),
    NodeKind("TRANSFORM", TRANSFORM, bare_jq=("expression",)),
    NodeKind("NOOP", NOOP),
    NodeKind("KAFKA", KAFKA, waits=_awaits_completion, secret_fields=("headers",)),
    NodeKind("NOTIFY", NOTIFY, sends=True, url_fields=("url",)),
    NodeKind("INTEGRATION_ACTION", INTEGRATION_ACTION, waits=_run_by_a_worker, sends=True),
    NodeKind("UPSERT_ENTITY", UPSERT_ENTITY),
    NodeKind("DELAY", DELAY, waits=always, completed_by="timer", timed=Timed("delay", "resumeAt")),
    NodeKind("APPROVAL", APPROVAL, waits=always, completed_by="decision", timed=Timed("approval-sla", "deadline")),
    NodeKind("INPUT", INPUT, waits=always, completed_by="answer"),
    NodeKind("SUB_WORKFLOW", SUB_WORKFLOW, waits=always, completed_by="child_runs"),
    NodeKind("FOREACH", FOREACH, waits=_over_a_workflow, completed_by="child_runs", deferred=("node",)),
    NodeKind("AI", AI),
    NodeKind("AI_AGENT", AI_AGENT),
    NodeKind("MCP", MCP),
)
"""Every node type a definition may use, by `config.type`."""


def _types(where: Callable[[NodeKind], bool]) -> frozenset[str]:
    return frozenset(t for t, k in KINDS.items() if where(k))


TRIGGER_TYPES = _types(lambda k: k.trigger)
ACTION_TYPES = _types(lambda k: not k.trigger)
"""The types the executor runs: each has an action."""
ENGINE_COMPLETED_TYPES = _types(lambda k: k.completed_by is not None)
"""A WAITING node run of these types is completed by the engine, never by a PATCH of the node run."""
ALWAYS_WAITING_TYPES = _types(lambda k: k.waits is always)
TIMER_KINDS = frozenset(k.timed.timer for k in KINDS.values() if k.timed is not None)
NODE_TYPE_SCHEMAS: Mapping[str, Mapping[str, Any]] = {t: k.schema for t, k in KINDS.items()}


def kind(node_type: str) -> NodeKind:
    """The kind of a registered type (KeyError for an unknown one)."""
    return KINDS[node_type]


def completed_by(node_type: str) -> Completer | None:
    """Who completes a waiting node run of this type (None: a PATCH, or an unknown type)."""
    found = KINDS.get(node_type)
    return None if found is None else found.completed_by


def known_node_types() -> list[str]:
    return sorted(KINDS)


@cache
def config_validator(node_type: str) -> Validator:
    """The compiled validator of a registered type (KeyError for an unknown one)."""
    return make_validator(KINDS[node_type].schema)


def config_issues(config: Any, pointer: str = "") -> list[Issue]:
    """Problems of one node's `config` (after normalisation), with pointers under `pointer`."""
    if not isinstance(config, dict):
        return [Issue(pointer, "config must be an object")]
    node_type = config.get("type")
    if not isinstance(node_type, str) or node_type not in KINDS:
        known = ", ".join(known_node_types())
        what = "config.type is required" if node_type is None else f"unknown node type {node_type!r}"
        return [Issue(jp.join(pointer, "type"), f"{what}; known: {known}")]
    return issues(config_validator(node_type), config, pointer, "config")
