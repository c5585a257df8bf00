"""Topic creation for `KafkaBus`: every topic it touches exists with the configured partitions.

Topics are created explicitly (CreateTopics through `AIOKafkaAdminClient`) rather than left to the
broker's `auto.create.topics.enable`, whose partition count is the broker's `num.partitions`. A topic
that already exists is left as it is, whatever its partition count: the partitioner uses the count
the topic really has. The admin client connects on first use; if that fails the next call tries
again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from libs.core.errors import BusError

_log = logging.getLogger(__name__)


class TopicCreator:
    """Creates each topic once per bus; safe to call concurrently."""

    def __init__(self, bootstrap: str, *, client_id: str, partitions: int, replication: int,
                 timeout: float) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._partitions = partitions
        self._replication = replication
        self._timeout = timeout
        self._admin: Any = None
        self._ready: set[str] = set()
        self._lock = asyncio.Lock()

    def is_ready(self, topic: str) -> bool:
        return topic in self._ready

    async def ensure(self, names: Iterable[str]) -> None:
        """Create those of `names` not yet known to exist; BusError if the broker refuses."""
        async with self._lock:
            missing = sorted(set(names) - self._ready)
            if not missing:
                return
            await self._create(missing)
            self._ready.update(missing)

    async def close(self) -> None:
        async with self._lock:
            admin, self._admin = self._admin, None
            if admin is not None:
                await close_admin(admin)

    async def _create(self, names: list[str]) -> None:
        new = [NewTopic(name, self._partitions, self._replication) for name in names]
        try:
            async with asyncio.timeout(self._timeout):
                admin = await self._connect()
                response = await admin.create_topics(new, timeout_ms=int(self._timeout * 1000))
        except (KafkaError, TimeoutError, OSError) as exc:
            raise BusError(f"could not create topics {names}: {exc!r}") from exc
        for name, code, *message in response.topic_errors:
            _check(name, code, message)

    async def _connect(self) -> Any:
        if self._admin is None:
            self._admin = await start_admin(self._bootstrap, f"{self._client_id}-admin", self._timeout)
        return self._admin


def _check(name: str, code: int, message: list[Any]) -> None:
    if code == 0:
        _log.info("created topic %s", name)
        return
    error = for_code(code)
    if error is TopicAlreadyExistsError:
        return
    raise BusError(f"could not create topic {name}: {error.__name__} {message[0] if message else ''}".strip())


async def start_admin(bootstrap: str, client_id: str, timeout: float) -> Any:
    """A started admin client (closed again if starting fails)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id,
                                request_timeout_ms=int(timeout * 1000))
    try:
        await admin.start()
    except BaseException:
        await close_admin(admin)
        raise
    return admin


async def close_admin(admin: Any) -> None:
    try:
        await admin.close()
    except (KafkaError, OSError) as exc:
        _log.warning("closing the Kafka admin client failed: %r", exc)
