"""Messages know their topic: each v1 message type goes to one topic, and a service's `Publisher`
puts a message there in an envelope from the service."""

from __future__ import annotations

from libs.bus.memory import MemoryBus
from libs.bus.publisher import Publisher
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope

TOPIC_OF: dict[type[v1.Message], str] = {
    v1.StartRun: topics.RUN_COMMANDS, v1.CancelRun: topics.RUN_COMMANDS, v1.AdmitRun: topics.RUN_COMMANDS,
    v1.CompleteNode: topics.RUN_COMMANDS, v1.FireTimer: topics.RUN_COMMANDS, v1.ReconcileRun: topics.RUN_COMMANDS,
    v1.ExecuteNode: topics.NODE_DISPATCH, v1.NodeResult: topics.NODE_RESULTS,
    **{event: topics.RUN_EVENTS for event in v1.RUN_EVENT_TYPES},
    v1.CatalogEvent: topics.CATALOG_EVENTS, v1.AuditRecorded: topics.AUDIT,
}
"""Where the services published each message type before the types named their topic."""


class RecordingBus(MemoryBus):
    def __init__(self) -> None:
        super().__init__(partitions=1)
        self.published: list[tuple[str, Envelope]] = []

    async def publish(self, topic: str, envelope: Envelope) -> None:
        self.published.append((topic, envelope))


def test_every_message_type_but_outside_messages_has_the_topic_it_was_published_on() -> None:
    assert {m: getattr(m, "TOPIC", None) for m in v1.MESSAGE_TYPES.values()} == {
        **TOPIC_OF, v1.ExternalMessage: None}


async def test_a_message_goes_to_its_topic_from_the_publishers_source() -> None:
    bus = RecordingBus()
    publisher = Publisher(bus, "stepline/scheduler")
    await publisher.publish(v1.AdmitRun(run_id="wfr_1"))
    await publisher.publish(v1.NodeResult(run_id="wfr_1", node_id="call", attempt=1, node_run_key="k"))
    assert [(topic, e.type, e.source, e.subject) for topic, e in bus.published] == [
        (topics.RUN_COMMANDS, v1.AdmitRun.TYPE, "stepline/scheduler", "wfr_1"),
        (topics.NODE_RESULTS, v1.NodeResult.TYPE, "stepline/scheduler", "wfr_1")]


async def test_envelopes_built_earlier_go_unchanged_to_their_types_topics_in_order() -> None:
    bus = RecordingBus()
    event = v1.RunStarted(run_id="wfr_1", seq=1, at="2026-01-01T00:00:00+00:00", workflow="w", version=1,
                          trigger=v1.EventTrigger())
    stored = Envelope.model_validate(Publisher(bus, "stepline/scheduler").wrap(event).model_dump())
    command = Publisher(bus, "stepline/scheduler").wrap(v1.AdmitRun(run_id="wfr_1"))
    await Publisher(bus, "stepline/other").publish_envelopes([stored, command])
    assert bus.published == [(topics.RUN_EVENTS, stored), (topics.RUN_COMMANDS, command)]
    assert (stored.id, stored.source) == ("wfr_1/1", "stepline/scheduler")
