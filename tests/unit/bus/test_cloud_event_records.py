"""Outside messages as CloudEvents or plain JSON (libs/contracts/cloudevents.py) through the Kafka codec:
structured mode with and without `subject`, binary mode (`ce_` headers), plain JSON, Stepline's own
envelopes; and what the catalog and the queue ingress make of each."""

from __future__ import annotations

import json
from typing import Any

import pytest

from libs.bus.kafka.codec import decode, encode
from libs.catalog.events import InvalidCatalogEventError, event_of
from libs.contracts import cloudevents, topics, v1
from libs.contracts.envelope import Envelope
from services.trigger.queues import message_output, message_workspace
from tests.unit.bus.test_kafka_codec import Record

PORT_EVENT: dict[str, Any] = {
    "action": "CREATE", "context": {"blueprintIdentifier": "service", "entityIdentifier": "billing"},
    "diff": {"before": None, "after": {"identifier": "billing", "properties": {"tier": "gold"}}}}
NOW = "2026-05-01T12:00:00.000Z"


def structured(data: Any, **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "type": "com.example.entity.changed", "source": "/catalog/port",
            "id": "ce-1", "datacontenttype": "application/json", "data": data, **extra}


def binary_headers(**extra: str) -> list[tuple[str, bytes]]:
    attributes = {"ce_specversion": "1.0", "ce_type": "com.example.entity.changed", "ce_source": "/catalog/port",
                  "ce_id": "ce-2", **extra}
    return [(k, v.encode()) for k, v in attributes.items()] + [("content-type", b"application/json")]


def record(value: Any, headers: list[tuple[str, bytes]] | None = None, topic: str = "orders",
           offset: int = 4) -> Record:
    return Record(topic, 1, offset, b"k", json.dumps(value).encode(), headers or [])


@pytest.mark.parametrize("extra", [{}, {"subject": "billing"}])
def test_a_structured_cloud_event_yields_its_data_with_or_without_subject(extra: dict[str, Any]) -> None:
    envelope = decode(record(structured({"order": 7}, tenant="acme", **extra)), external=True)
    assert envelope.type == v1.ExternalMessage.TYPE, "a foreign CloudEvent is an outside message"
    message = cloudevents.incoming(envelope)
    assert message.payload == {"order": 7}
    assert message.id == "ce-1"
    assert message.attributes is not None and "data" not in message.attributes
    assert (message.attributes["source"], message.attributes["tenant"]) == ("/catalog/port", "acme")
    assert message.attributes.get("subject") == extra.get("subject")


def test_a_binary_cloud_event_yields_the_value_with_the_header_attributes() -> None:
    envelope = decode(record({"order": 8}, binary_headers(ce_subject="order-8", ce_workspace="team-a")), external=True)
    message = cloudevents.incoming(envelope)
    assert (message.payload, message.id) == ({"order": 8}, "ce-2")
    assert message.attributes == {"specversion": "1.0", "type": "com.example.entity.changed",
                                  "source": "/catalog/port", "id": "ce-2", "subject": "order-8",
                                  "workspace": "team-a"}
    assert message_workspace(message) == "team-a"


def test_plain_json_is_its_own_payload_with_the_record_position_as_id() -> None:
    incomplete = binary_headers()[:2]  # ce_specversion and ce_type only: not a CloudEvent
    message = cloudevents.incoming(decode(record({"order": 9, "specversion": "1.0"}, incomplete), external=True))
    assert (message.payload, message.attributes, message.id) == ({"order": 9, "specversion": "1.0"}, None,
                                                                "orders/1/4")
    assert message_output(cloudevents.incoming(decode(record([1, 2]), external=True))) == {"value": [1, 2]}


def test_steplines_own_envelopes_are_cloud_events_too() -> None:
    own = Envelope(type="dev.stepline.kafka.message.v1", source="stepline/executor", subject="k",
                   data={"payload": {"a": 1}, "context": {}})
    key, value, headers = encode(own, "00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    decoded = decode(Record("orders", 0, 1, key, value, headers), external=True)
    assert decoded == own
    message = cloudevents.incoming(decoded)
    assert (message.payload, message.id) == (own.data, own.id)
    assert message.attributes is not None and message.attributes["type"] == "dev.stepline.kafka.message.v1"


def catalog_record(value: Any, headers: list[tuple[str, bytes]] | None = None, offset: int = 4) -> Envelope:
    return decode(record(value, headers, topic=topics.CATALOG_EVENTS, offset=offset), external=True)


def test_catalog_events_in_all_three_forms() -> None:
    plain = event_of(catalog_record({**PORT_EVENT, "id": "port-1"}), timestamp=NOW)
    wrapped = event_of(catalog_record(structured(PORT_EVENT, subject="service/billing")), timestamp=NOW)
    binary = event_of(catalog_record(PORT_EVENT, binary_headers(ce_workspace="team-a")), timestamp=NOW)
    assert plain is not None and wrapped is not None and binary is not None
    assert [e.id for e in (plain, wrapped, binary)] == ["port-1", "ce-1", "ce-2"]
    assert {e.run_id for e in (plain, wrapped, binary)} == {"service/billing"}
    assert [e.workspace for e in (plain, wrapped, binary)] == ["default", "default", "team-a"]
    assert not any(e.stored for e in (plain, wrapped, binary)), "events from outside are applied by the trigger"
    assert plain.diff.after == wrapped.diff.after == binary.diff.after == PORT_EVENT["diff"]["after"]


def test_a_cloud_events_id_wins_and_plain_json_without_id_gets_a_stable_one() -> None:
    wrapped = event_of(catalog_record(structured({**PORT_EVENT, "id": "inner"})), timestamp=NOW)
    assert wrapped is not None and wrapped.id == "ce-1"
    first = event_of(catalog_record(PORT_EVENT, offset=9), timestamp=NOW)
    again = event_of(catalog_record(PORT_EVENT, offset=9), timestamp="2026-05-01T12:00:05.000Z")
    assert first is not None and again is not None and first.id == again.id != "ce-1"


def test_a_cloud_event_whose_data_is_not_a_catalog_event_is_refused_with_a_pointer() -> None:
    with pytest.raises(InvalidCatalogEventError) as refused:
        event_of(catalog_record(structured({"action": "RENAME", "context": {}})), timestamp=NOW)
    assert {i.pointer for i in refused.value.issues} >= {"/action", "/context/blueprintIdentifier"}
