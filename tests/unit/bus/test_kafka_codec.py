"""The Kafka codec on records that are not envelopes: poison on Stepline's own topics, an
ExternalMessage on topics that accept outside messages (queue subscriptions, catalog-events)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from libs.bus.kafka.codec import Header, PoisonMessageError, accepts_external, decode, encode
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header] = field(default_factory=list)


def test_an_envelope_decodes_the_same_with_or_without_external() -> None:
    envelope = Envelope(type="dev.stepline.kafka.message.v1", source="tests", subject="k", data={"payload": 1})
    key, value, headers = encode(envelope, "00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    record = Record("orders", 0, 5, key, value, headers)
    assert decode(record) == decode(record, external=True) == envelope


def test_plain_json_is_poison_unless_the_subscription_accepts_outside_messages() -> None:
    record = Record("orders", 3, 17, b"order-9", b'{"order": 9}')
    with pytest.raises(PoisonMessageError):
        decode(record)
    wrapped = decode(record, external=True)
    assert (wrapped.id, wrapped.type, wrapped.subject) == ("orders/3/17", v1.ExternalMessage.TYPE, "order-9")
    assert wrapped.message() == v1.ExternalMessage(run_id="order-9", topic="orders", partition=3, offset=17,
                                                   key="order-9", value={"order": 9})
    assert decode(record, external=True).id == wrapped.id  # a redelivery has the same id


@pytest.mark.parametrize("value", [b'"text"', b"[1, 2]", b"null", b"3.5", b'{"type": "not an envelope"}'])
def test_any_json_value_is_wrapped(value: bytes) -> None:
    wrapped = decode(Record("orders", 0, 1, None, value), external=True)
    assert wrapped.subject == "orders/0/1" and wrapped.data["key"] is None


@pytest.mark.parametrize("value", [None, b"", b"\xffbinary", b"{not json", b"NaN", b'{"x": Infinity}'])
def test_what_is_not_json_stays_poison_everywhere(value: bytes | None) -> None:
    with pytest.raises(PoisonMessageError):
        decode(Record("orders", 0, 1, b"k", value), external=True)


def test_which_subscriptions_accept_outside_messages() -> None:
    assert accepts_external(topics.CATALOG_EVENTS, external=False)
    assert accepts_external("orders", external=True)
    for internal in (topics.RUN_COMMANDS, topics.NODE_DISPATCH, topics.NODE_RESULTS, topics.RUN_EVENTS):
        assert not accepts_external(internal, external=False)
    assert not accepts_external("orders", external=False)
