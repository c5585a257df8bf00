"""docker-compose.yml's broker listeners, checked without Docker: the services use the internal one, a
producer outside the compose network reaches the external one on a published loopback port, and every
listener named anywhere is declared with a security protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE: dict[str, Any] = yaml.safe_load((Path(__file__).parents[3] / "docker-compose.yml").read_text())
KAFKA: dict[str, Any] = COMPOSE["services"]["kafka"]


def listeners(variable: str) -> dict[str, str]:
    """`NAME://host:port,...` → {NAME: "host:port"}."""
    return dict(item.split("://", 1) for item in KAFKA["environment"][variable].split(","))


def test_every_listener_has_a_protocol_and_every_advertised_one_is_declared() -> None:
    declared = listeners("KAFKA_LISTENERS")
    protocol_map = KAFKA["environment"]["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    protocols = dict(item.split(":") for item in protocol_map.split(","))
    assert set(declared) <= set(protocols)
    assert set(listeners("KAFKA_ADVERTISED_LISTENERS")) <= set(declared)
    assert KAFKA["environment"]["KAFKA_INTER_BROKER_LISTENER_NAME"] in declared


def test_the_services_use_the_internal_listener_and_outsiders_the_published_external_one() -> None:
    advertised = listeners("KAFKA_ADVERTISED_LISTENERS")
    assert COMPOSE["x-stepline-env"]["STEPLINE_BUS_URL"] == f"kafka://{advertised['PLAINTEXT']}"
    external_port = listeners("KAFKA_LISTENERS")["EXTERNAL"].rsplit(":", 1)[1]
    assert advertised["EXTERNAL"] == f"${{KAFKA_EXTERNAL_HOST:-localhost}}:{external_port}"
    assert KAFKA["ports"] == [f"${{KAFKA_EXTERNAL_BIND:-127.0.0.1}}:{external_port}:{external_port}"]
