"""Consumer lag per partition as a Prometheus gauge, computed when scraped: for every partition a
live `SubscriptionConsumer` of this process owns, the partition's high watermark (from the last
fetch response, no broker round trip) minus the offset of the next record its worker will handle.
A partition whose fetches returned no record since it was assigned is caught up (lag 0); one with
no fetch response yet has no sample."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from libs.bus.kafka.consumer import SubscriptionConsumer

_consumers: weakref.WeakSet[SubscriptionConsumer] = weakref.WeakSet()


def watch(consumer: SubscriptionConsumer) -> None:
    """Report `consumer`'s partitions while it lives."""
    _consumers.add(consumer)


def lags(consumer: SubscriptionConsumer) -> Iterable[tuple[str, str, int, int]]:
    """(topic, group, partition, lag) of each partition with a known position and high watermark."""
    client = consumer.kafka_consumer
    if client is None:
        return
    for tp, worker in list(consumer.workers.items()):
        highwater = client.highwater(tp)
        if highwater is not None:
            position = highwater if worker.position is None else worker.position
            yield tp.topic, consumer.delivery.group, tp.partition, max(highwater - position, 0)


class _Lag(Collector):
    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("stepline_bus_consumer_lag", "Records of a partition not yet handled by this "
                                   "process's consumer: high watermark minus its position.",
                                   labels=["topic", "group", "partition"])
        for consumer in list(_consumers):
            for topic, group, partition, lag in lags(consumer):
                family.add_metric([topic, group, str(partition)], lag)
        yield family


REGISTRY.register(_Lag())
