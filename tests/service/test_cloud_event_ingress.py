"""Messages from outside Stepline in the embedded engine: one rule for CloudEvents and plain JSON on
QUEUE_TRIGGER topics (the CloudEvent's `data` is the output, its attributes are `.trigger.event`),
and catalog events from outside (`POST /v1/catalog/events`, or Port JSON / CloudEvents on the
catalog-events topic) applied to the stored entity once per event id before they start runs.
The same on the real broker: tests/contract/test_upstream_producers_on_broker.py."""

from __future__ import annotations

from typing import Any

import httpx

from libs.contracts import topics
from tests.service.test_catalog import event, listener, runs_of, settled
from tests.service.test_queue_trigger import external, kafka_message, queued, wait_runs

ATTRIBUTES = {"specversion": "1.0", "type": "com.example.order.placed", "source": "/shop", "id": "ord-77"}


def seeing_the_event(identifier: str) -> dict[str, Any]:
    """A queue-triggered workflow whose `seen` node shows the CloudEvent attributes it was started by."""
    definition = queued(identifier)
    definition["nodes"][1] = {"identifier": "work",
                              "config": {"type": "TRANSFORM", "expression": "{{ .trigger.event }}"}}
    return definition


async def test_a_cloud_event_always_yields_its_data_and_plain_json_itself(engine: Any, api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/workflows", json=seeing_the_event("on-order"))
    assert response.status_code == 201, response.text
    without_subject = external({**ATTRIBUTES, "data": {"order": 77}}, offset=0)
    with_subject = external({**ATTRIBUTES, "id": "ord-78", "subject": "order-78", "data": {"order": 78}}, offset=1)
    binary = external({"order": 79}, offset=2)
    binary.data["headers"] = {f"ce_{k}": v for k, v in {**ATTRIBUTES, "id": "ord-79"}.items()}
    plain = external({"order": 80, "id": "not-a-cloud-event"}, offset=3)
    for envelope in (without_subject, with_subject, binary, plain, kafka_message({"order": 81})):
        await engine.bus.publish("orders.v1", envelope)

    runs = {r.idempotency_key: r for r in await wait_runs(engine, "on-order", 5)}
    assert [runs[f"queue:message:ord-{n}"].inputs for n in (77, 78, 79)] == [{"order": n} for n in (77, 78, 79)]
    assert runs["queue:message:ord-78"].trigger.event == {**ATTRIBUTES, "id": "ord-78", "subject": "order-78"}
    assert runs["queue:message:ord-79"].trigger.event == {**ATTRIBUTES, "id": "ord-79"}
    assert runs["queue:message:orders.v1/0/3"].inputs == {"order": 80, "id": "not-a-cloud-event"}
    assert runs["queue:message:orders.v1/0/3"].trigger.event is None
    [own] = [r for r in runs.values() if r.inputs.get("payload") == {"order": 81}]
    assert own.trigger.event is not None and own.trigger.event["type"] == "dev.stepline.kafka.message.v1"

    run = (await api.get(f"/v1/workflows/runs/{runs['queue:message:ord-77'].id}", params={"wait": 5})).json()
    assert run["workflowRun"]["variables"]["outputs"]["work"] == {**ATTRIBUTES}, "`.trigger.event` in templates"


async def test_a_cloud_event_re_sent_at_another_offset_starts_nothing_new(engine: Any, api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/workflows", json=queued("on-order"))
    assert response.status_code == 201, response.text
    for offset in (0, 1):  # a producer retry: the same event id, a new record
        await engine.bus.publish("orders.v1", external({**ATTRIBUTES, "data": {"order": 77}}, offset=offset))
    await wait_runs(engine, "on-order", 1)
    await settled(engine)
    assert len(await wait_runs(engine, "on-order", 1)) == 1


async def entity(api: httpx.AsyncClient, identifier: str) -> dict[str, Any] | None:
    response = await api.get(f"/v1/blueprints/service/entities/{identifier}")
    assert response.status_code in (200, 404), response.text
    return response.json()["entity"] if response.status_code == 200 else None


async def test_posted_events_update_the_stored_entity_once_per_id(api: httpx.AsyncClient, engine: Any) -> None:
    await api.post("/v1/workflows", json=listener("on-any", "ANY_ENTITY_CHANGE"))
    created = event("billing", "gold", event_id="e-1")
    created["diff"]["after"].update(title="Billing", team="payments", relations={"domain": "money"})
    assert (await api.post("/v1/catalog/events", json=created)).status_code == 202
    await settled(engine)
    stored = await entity(api, "billing")
    assert stored is not None
    assert (stored["title"], stored["team"], stored["properties"], stored["relations"]) == (
        "Billing", ["payments"], {"tier": "gold"}, {"domain": "money"})

    updated = event("billing", "silver", event_id="e-2", action="UPDATE")
    assert (await api.post("/v1/catalog/events", json=updated)).status_code == 202
    assert (await api.post("/v1/catalog/events", json=created)).status_code == 202  # e-1 again: changes nothing
    await settled(engine)
    after = await entity(api, "billing")
    assert after is not None
    assert after["properties"] == {"tier": "silver"}, "diff.after is the whole entity: properties replaced"
    assert (after["title"], after["createdAt"]) == ("Billing", stored["createdAt"])
    assert len(await runs_of(api, "on-any")) == 2

    deleted = {**event("billing", "silver", event_id="e-3", action="DELETE")}
    deleted["diff"]["after"] = None
    assert (await api.post("/v1/catalog/events", json=deleted)).status_code == 202
    await settled(engine)
    assert await entity(api, "billing") is None


async def test_catalog_cloud_events_on_the_topic_are_applied(api: httpx.AsyncClient, engine: Any) -> None:
    await api.post("/v1/workflows", json=listener("on-created"))
    wrapped = external({**ATTRIBUTES, "id": "cat-1", "data": event("ledger", "gold")}, offset=0,
                       topic=topics.CATALOG_EVENTS)
    await engine.bus.publish(topics.CATALOG_EVENTS, wrapped)
    await settled(engine)
    stored = await entity(api, "ledger")
    assert stored is not None and stored["properties"] == {"tier": "gold"}
    [run] = await runs_of(api, "on-created")
    assert run["inputs"]["id"] == "cat-1"
    assert run["trigger"]["event"] == {**ATTRIBUTES, "id": "cat-1"}
