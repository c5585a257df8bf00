"""The `KafkaBus` producer's partitioner: the same partition as `MemoryBus` gives a key.

aiokafka's default partitioner hashes keys with murmur2 (as the Java client does). The bus uses
CRC-32 of the key bytes modulo the topic's partition count instead, the rule of
`libs.bus.memory.partition_for`, so that:

- one run's messages stay in one partition (any deterministic hash would do that);
- a key's partition is the same in embedded and distributed mode and can be computed by tools and
  tests without Kafka (`KafkaBus.partition_of`).

The cost: a Java or librdkafka producer writing to the same topics with its default partitioner
would put a key elsewhere, breaking per-run order. Anything else producing to Stepline topics
must use this rule (`crc32(key) % partitions`).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence


def crc32_partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """aiokafka's partitioner signature. `all_partitions` holds a topic's partition ids (0..N-1, in no
    promised order). An unkeyed record (the bus never sends one) goes anywhere."""
    if key is None:
        return random.choice(list(available) or list(all_partitions))
    return sorted(all_partitions)[zlib.crc32(key) % len(all_partitions)]
