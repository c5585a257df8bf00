"""Quotas (pure): how much one definition, run or node run may hold, so one bad workflow costs only
its own run. Each limit is a setting (`STEPLINE_<NAME>`, libs/runtime/limits.py); a breach is a 4xx
naming the field at save time, or a clear, non-retryable node failure at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from pydantic_core import to_json

from libs.core import pointer as jp
from libs.core.errors import DefinitionError, Issue

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_nodes_per_definition: int = 500
    max_definition_bytes: int = MIB
    max_foreach_items: int = 10_000
    max_foreach_concurrency: int = 100
    max_child_runs_per_run: int = 10_000
    max_child_runs_per_root_run: int = 10_000
    max_run_depth: int = 10
    max_output_bytes: int = MIB
    max_run_variables_bytes: int = 16 * MIB
    max_log_entries_per_node_run: int = 1_000
    max_log_bytes_per_node_run: int = MIB
    kafka_topics_allow: tuple[str, ...] = ("*",)


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON, the form it is stored and sent in (pydantic-core's
    serialiser: about 4x faster than `json.dumps`, and this runs once per node completion)."""
    return len(to_json(value, fallback=str))


def topic_allowed(topic: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(topic, pattern) for pattern in patterns)


def topic_problem(topic: str, limits: Limits) -> str | None:
    if topic_allowed(topic, limits.kafka_topics_allow):
        return None
    return f"topic {topic!r} is not allowed (STEPLINE_KAFKA_TOPICS_ALLOW: {', '.join(limits.kafka_topics_allow)})"


def definition_issues(raw: Any, limits: Limits) -> list[Issue]:
    """The quotas a submitted definition breaks: its size, its node count, literal FOREACH items and
    concurrency, and the Kafka topics it names (templated values are checked at run time)."""
    if not isinstance(raw, dict):
        return []
    found: list[Issue] = []
    size = json_size(raw)
    if size > limits.max_definition_bytes:
        found.append(Issue("", f"the definition is {size} bytes, over the limit of {limits.max_definition_bytes} "
                               "(STEPLINE_MAX_DEFINITION_BYTES)"))
    nodes = raw.get("nodes")
    if isinstance(nodes, list) and len(nodes) > limits.max_nodes_per_definition:
        found.append(Issue("/nodes", f"a definition may have at most {limits.max_nodes_per_definition} nodes, "
                                     f"this one has {len(nodes)} (STEPLINE_MAX_NODES_PER_DEFINITION)"))
        return found
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        config = node.get("config") if isinstance(node, dict) else None
        if isinstance(config, dict):
            found += _config_issues(config, jp.join("/nodes", index, "config"), limits)
    return found


def _config_issues(config: dict[str, Any], pointer: str, limits: Limits) -> list[Issue]:
    kind = config.get("type")
    if kind == "FOREACH":
        return foreach_issues(config, pointer, limits)
    topic = config.get("topic")
    if kind in ("KAFKA", "QUEUE_TRIGGER") and isinstance(topic, str) and "{{" not in topic:
        problem = topic_problem(topic, limits)
        return [Issue(jp.join(pointer, "topic"), problem)] if problem else []
    return []


def foreach_issues(config: dict[str, Any], pointer: str, limits: Limits) -> list[Issue]:
    found: list[Issue] = []
    items, concurrency = config.get("items"), config.get("concurrency")
    if isinstance(items, list):
        problem = items_problem(len(items), limits)
        found += [Issue(jp.join(pointer, "items"), problem)] if problem else []
    if isinstance(concurrency, int) and not isinstance(concurrency, bool):
        problem = concurrency_problem(concurrency, limits)
        found += [Issue(jp.join(pointer, "concurrency"), problem)] if problem else []
    inline = config.get("node")
    if isinstance(inline, dict):
        found += _config_issues(inline, jp.join(pointer, "node"), limits)
    return found


def items_problem(count: int, limits: Limits) -> str | None:
    if count <= limits.max_foreach_items:
        return None
    return f"a FOREACH may map at most {limits.max_foreach_items} items, got {count} (STEPLINE_MAX_FOREACH_ITEMS)"


def concurrency_problem(concurrency: int, limits: Limits) -> str | None:
    if concurrency <= limits.max_foreach_concurrency:
        return None
    return (f"a FOREACH's concurrency may be at most {limits.max_foreach_concurrency}, got {concurrency} "
            "(STEPLINE_MAX_FOREACH_CONCURRENCY)")


def output_problem(output: Any, limits: Limits, what: str = "the node's output") -> str | None:
    size = json_size(output)
    if size <= limits.max_output_bytes:
        return None
    return f"{what} is {size} bytes, over the limit of {limits.max_output_bytes} (STEPLINE_MAX_OUTPUT_BYTES)"


def logs_problem(stored: list[dict[str, Any]], added: list[dict[str, Any]], limits: Limits) -> str | None:
    """Why `added` log entries cannot join the `stored` ones of a node run, or None."""
    count = len(stored) + len(added)
    if count > limits.max_log_entries_per_node_run:
        return (f"a node run may hold at most {limits.max_log_entries_per_node_run} log entries; it has "
                f"{len(stored)} and {len(added)} more were sent (STEPLINE_MAX_LOG_ENTRIES_PER_NODE_RUN)")
    size = json_size(stored) + json_size(added)
    if size > limits.max_log_bytes_per_node_run:
        return (f"a node run's logs may hold at most {limits.max_log_bytes_per_node_run} bytes; with these "
                f"they would hold {size} (STEPLINE_MAX_LOG_BYTES_PER_NODE_RUN)")
    return None


def admit_definition(raw: Any, limits: Limits) -> None:
    """DefinitionError (422, with pointers) when a submitted definition breaks a quota; checked
    before the full validation, so a 10,000-node definition costs no more than reading it."""
    found = definition_issues(raw, limits)
    if found:
        first = found[0]
        raise DefinitionError(f"workflow definition over a limit: {first.pointer or '/'}: {first.message}", found)
