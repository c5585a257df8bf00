"""The bus port on Apache Kafka: `KafkaBus` (bus.py) and its parts.

bus.py (`KafkaBus`), producer.py, topics.py, consumer.py (one consumer per subscription),
worker.py (per-partition worker), delivery.py (redelivery and dead letters), commit.py, codec.py
(envelope ⇄ record), partitioner.py, membership.py (static group membership), backoff.py,
outage_log.py (the outage log limiter), lag.py (consumer lag per partition for Prometheus).
The tracing of publishes and handled messages, shared with the in-memory bus, is libs/bus/tracing.py.
"""

from libs.bus.kafka.bus import KafkaBus

__all__ = ["KafkaBus"]
