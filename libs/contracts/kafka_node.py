"""The message a KAFKA node publishes, for whoever consumes it (QUEUE_TRIGGER, outside systems).

A CloudEvents envelope (libs/contracts/envelope.py) with `type` = `MESSAGE_TYPE`, `source` = the
executor's (`stepline/executor`), `subject` = the node's `key` (or the run id when it has none), and `data`:

    {"payload": <the node's rendered payload>,
     "context": {"workflowRunId", "nodeRunId", "workflow", "node"}}

A consumer reports back to a node that waits (`waitForCompletion: true`) with a PATCH of the node
run named by `context.nodeRunId`.
"""

from __future__ import annotations

import re
from typing import Final

from libs.contracts import topics

MESSAGE_TYPE: Final = "dev.stepline.kafka.message.v1"

TOPIC_PATTERN: Final = r"^[A-Za-z0-9._-]{1,249}$"
"""Kafka's rule for topic names (`.` and `..` alone are refused too)."""

RESERVED_TOPICS: Final = frozenset({
    topics.RUN_COMMANDS, topics.NODE_DISPATCH, topics.NODE_RESULTS, topics.RUN_EVENTS,
    topics.CATALOG_EVENTS, topics.DEAD_LETTERS, topics.AUDIT,
})
"""Stepline's own topics: a KAFKA node may not publish to them."""
RESERVED_PREFIX: Final = "stepline."
"""Every name under it is kept for Stepline (QUEUE_TRIGGER does not consume from them either)."""


def topic_problem(topic: object) -> str | None:
    """Why `topic` cannot be a KAFKA node's topic, or None if it can."""
    if not isinstance(topic, str) or not re.fullmatch(TOPIC_PATTERN, topic) or topic in (".", ".."):
        return "must be a Kafka topic name: 1–249 characters of A-Z a-z 0-9 . _ -"
    if topic in RESERVED_TOPICS:
        return f"{topic} is one of Stepline's internal topics"
    if topic.startswith(RESERVED_PREFIX):
        return f"must not start with {RESERVED_PREFIX!r}, which Stepline's own topics use"
    return None
