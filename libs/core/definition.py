"""The Port-compatible workflow definition format, as frozen pydantic models.

Raw JSON goes through `normalize()` (older/later condition shapes folded into `options`) and then
`libs.core.validation.parse_workflow`, which returns a `Workflow` or raises `DefinitionError`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from libs.core.node_kinds import KINDS, TRIGGER_TYPES


class _Frozen(BaseModel):
    """Strict: `"timeoutSeconds": "5"` or `"fallback": "true"` is refused, not coerced."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, strict=True)


class RetryPolicy(_Frozen):
    """Retry a failed node attempt with exponential backoff."""

    maxAttempts: int = Field(default=1, ge=1, le=100)
    initialIntervalSeconds: float = Field(default=1.0, ge=0, le=86400)
    backoffCoefficient: float = Field(default=2.0, ge=1, le=100)
    maxIntervalSeconds: float = Field(default=300.0, ge=0, le=86400)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2, 3, ...) after the previous one failed."""
        raw = self.initialIntervalSeconds * self.backoffCoefficient ** max(0, attempt - 2)
        return float(min(raw, self.maxIntervalSeconds))


class Node(_Frozen):
    identifier: str
    title: str | None = None
    icon: str | None = None
    description: str | None = None
    config: dict[str, Any]
    variables: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeoutSeconds: float | None = Field(default=None, gt=0, le=31_536_000)
    onFailure: Literal["terminate", "continue"] | None = None
    """Default `terminate`; Port's later shape puts it inside `config` (see `continues_on_failure`)."""
    links: list[str] | None = None
    """Port's display field (links shown on the node); kept, not used by the engine."""
    verbose: bool | None = None
    """Port's display field; kept, not used by the engine."""
    category: str | None = None
    """Port's display field; kept, not used by the engine."""

    @property
    def type(self) -> str:
        return str(self.config.get("type", ""))

    @property
    def continues_on_failure(self) -> bool:
        """`onFailure: continue` on the node, or inside `config` where Port puts it (the node's wins)."""
        return (self.onFailure or self.config.get("onFailure")) == "continue"

    @property
    def continues_on_timeout(self) -> bool:
        """Port's `config.onTimeout: continue`: a timed-out node's successors run."""
        return self.config.get("onTimeout") == "continue"

    @property
    def is_trigger(self) -> bool:
        return self.type in TRIGGER_TYPES

    @property
    def waits_for_completion(self) -> bool:
        """The node's action starts work that an outside caller completes (PATCH of its node run)."""
        kind = KINDS.get(self.type)
        return kind is not None and kind.completed_from_outside(self.config)

    @property
    def max_attempts(self) -> int:
        return self.retry.maxAttempts if self.retry else 1


class Connection(_Frozen):
    identifier: str | None = None
    description: str | None = None
    sourceIdentifier: str
    targetIdentifier: str
    sourceOptionIdentifier: str | None = None
    fallback: bool = False
    onFailure: bool = False
    """Stepline extension: an error branch, taken only when the source fails."""


class Workflow(_Frozen):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, strict=True)

    identifier: str
    title: str | None = None
    icon: str | None = None
    description: str | None = None
    owner: str | None = None
    category: str | None = None
    """Port's display field; kept, not used by the engine."""
    tags: list[str] = Field(default_factory=list)
    allowAnyoneToViewRuns: bool = True
    notificationUrl: str | None = None
    """Stepline extension: the notifier POSTs each run's `run.started` and `run.completed` events here."""
    concurrencyLimit: int | None = Field(default=None, ge=1, le=100_000)
    """Stepline extension: at most this many runs IN_PROGRESS at once; later ones queue (FIFO)."""
    nodes: list[Node]
    connections: list[Connection] = Field(default_factory=list)

    @cached_property
    def _positions(self) -> dict[str, int]:
        """Each node's index in `nodes` by identifier (the first of a repeated one, as validation
        reports it): the one index `node`, `position` and `has_node` read."""
        positions: dict[str, int] = {}
        for i, n in enumerate(self.nodes):
            positions.setdefault(n.identifier, i)
        return positions

    def node(self, identifier: str) -> Node:
        return self.nodes[self._positions[identifier]]

    def position(self, identifier: str) -> int | None:
        """The node's index in `nodes`, or None when there is none of that identifier."""
        return self._positions.get(identifier)

    def has_node(self, identifier: str) -> bool:
        return identifier in self._positions

    def triggers(self) -> list[Node]:
        return [n for n in self.nodes if n.is_trigger]


def normalize(raw: dict[str, Any]) -> dict[str, Any]:
    """Fold the older (`conditions` + `defaultConnectionIdentifier`) and later (`outlets`,
    `sourceOutletIdentifier`) condition shapes into `options` + `sourceOptionIdentifier`/`fallback`,
    and give every connection an identifier. Returns a new dict; unknown shapes pass through for
    validation to report."""
    out = dict(raw)
    given = raw.get("connections")
    listed = given if isinstance(given, list) else []
    connections = [dict(c) if isinstance(c, dict) else c for c in listed]
    taken = {c["identifier"] for c in connections if isinstance(c, dict)
             and isinstance(c.get("identifier"), str)}
    for index, conn in enumerate(connections):
        if isinstance(conn, dict):
            if "sourceOutletIdentifier" in conn and "sourceOptionIdentifier" not in conn:
                conn["sourceOptionIdentifier"] = conn.pop("sourceOutletIdentifier")
            if "identifier" not in conn:
                conn["identifier"] = _free_identifier(f"c{index}", taken)
    by_id = {c["identifier"]: c for c in connections if isinstance(c, dict)
             and isinstance(c["identifier"], str)}
    nodes = raw.get("nodes")
    if isinstance(nodes, list):
        out["nodes"] = [_normalize_node(n, by_id) for n in nodes]
    if isinstance(given, list):
        out["connections"] = connections
    return out


def _free_identifier(wanted: str, taken: set[Any]) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`... if a connection already uses it."""
    candidate, suffix = wanted, 1
    while candidate in taken:
        suffix += 1
        candidate = f"{wanted}-{suffix}"
    taken.add(candidate)
    return candidate


def _normalize_node(node: Any, connections: dict[str, dict[str, Any]]) -> Any:
    if not isinstance(node, dict) or not isinstance(node.get("config"), dict):
        return node
    config = dict(node["config"])
    if config.get("type") != "CONDITION" or "options" in config:
        return node
    if "outlets" in config:
        config["options"] = config.pop("outlets")
    elif "conditions" in config and isinstance(config["conditions"], list):
        options = []
        for index, cond in enumerate(config.pop("conditions")):
            if not isinstance(cond, dict):
                options.append(cond)
                continue
            option_id = cond.get("identifier") or f"condition-{index}"
            options.append({k: v for k, v in cond.items() if k != "connectionIdentifier"}
                           | {"identifier": option_id})
            target = connections.get(str(cond.get("connectionIdentifier")))
            if target is not None:
                target["sourceOptionIdentifier"] = option_id
        default = config.pop("defaultConnectionIdentifier", None)
        if isinstance(default, str) and default in connections:
            connections[default]["fallback"] = True
        config["options"] = options
    return {**node, "config": config}
