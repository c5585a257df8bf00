"""Lenient views of a normalised but not yet validated definition.

Validation reports every problem at once, so the graph and node rules must run even when some nodes
or connections are malformed. These views take what is usable from each raw item and leave the rest
as None (the structural check has already reported it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from libs.core import pointer as jp
from libs.core.node_kinds import TRIGGER_TYPES


@dataclass(frozen=True)
class NodeView:
    index: int
    identifier: str | None
    type: str | None
    config: dict[str, Any] | None
    variables: Any

    @property
    def pointer(self) -> str:
        return jp.join("/nodes", self.index)

    @property
    def is_trigger(self) -> bool:
        return self.type in TRIGGER_TYPES

    def options(self) -> list[str]:
        """Identifiers of a CONDITION's options, in order."""
        raw = (self.config or {}).get("options")
        items = raw if isinstance(raw, list) else []
        identifiers = (o.get("identifier") if isinstance(o, dict) else None for o in items)
        return [i for i in identifiers if isinstance(i, str)]


@dataclass(frozen=True)
class EdgeView:
    index: int
    identifier: str | None
    source: str | None
    target: str | None
    option: str | None
    fallback: bool
    on_failure: bool

    @property
    def pointer(self) -> str:
        return jp.join("/connections", self.index)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def node_views(doc: dict[str, Any]) -> list[NodeView]:
    nodes = doc.get("nodes")
    views = []
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        node = node if isinstance(node, dict) else {}
        config = node.get("config") if isinstance(node.get("config"), dict) else None
        node_type = _text(config.get("type")) if config is not None else None
        views.append(NodeView(index, _text(node.get("identifier")), node_type, config, node.get("variables")))
    return views


def edge_views(doc: dict[str, Any]) -> list[EdgeView]:
    connections = doc.get("connections")
    views = []
    for index, conn in enumerate(connections if isinstance(connections, list) else []):
        conn = conn if isinstance(conn, dict) else {}
        views.append(
            EdgeView(
                index=index,
                identifier=_text(conn.get("identifier")),
                source=_text(conn.get("sourceIdentifier")),
                target=_text(conn.get("targetIdentifier")),
                option=_text(conn.get("sourceOptionIdentifier")),
                fallback=conn.get("fallback") is True,
                on_failure=conn.get("onFailure") is True,
            )
        )
    return views
