"""Which topics a KAFKA node may publish to (libs/contracts/kafka_node.py)."""

from __future__ import annotations

import pytest

from libs.contracts import kafka_node, topics


@pytest.mark.parametrize("topic", ["orders", "orders.created.v1", "a_b-C.9", "x" * 249])
def test_kafka_topic_names_are_accepted(topic: str) -> None:
    assert kafka_node.topic_problem(topic) is None


@pytest.mark.parametrize("topic", ["", ".", "..", "has space", "x" * 250, "ünicode", 7, None])
def test_names_kafka_refuses_are_refused(topic: object) -> None:
    assert "Kafka topic name" in str(kafka_node.topic_problem(topic))


@pytest.mark.parametrize("topic", sorted(topics.ALL))
def test_every_internal_topic_is_refused(topic: str) -> None:
    assert kafka_node.topic_problem(topic) is not None


def test_the_stepline_prefix_is_reserved() -> None:
    assert "stepline." in str(kafka_node.topic_problem("stepline.my-topic"))
