"""Static consumer-group membership (KIP-345) for `KafkaBus`: a crashed replica gets its partitions
back as soon as it is restarted, and a replica stopped on purpose hands them over at once.

Identity
    Each consumer joins with `group.instance.id` = `{replica}--{topic}` (`static_id`): `replica` is
    the process's `STEPLINE_INSTANCE_ID`, which must be stable across restarts of one replica and
    different between replicas (`up --distributed` names them `scheduler`, `executor-1`, ...; in a
    container the default `{hostname}-{pid}` is the container's id and pid 1). The topic makes it one
    id per consumer: the scheduler has two consumers in one group, and a shared id would fence one
    with the other. Characters Kafka refuses in an instance id become `_`.

Crash and restart
    The broker keeps a static member's partitions for the session timeout without rebalancing. A
    restarted replica rejoining with the same id within that time takes over the member's place and
    its assignment: no rebalance, the other members never stop. (With a fresh id every start, the
    group waited for the dead member's session to expire and then rebalanced, stopping everyone.)
    A replica that does not come back loses its partitions after the session timeout.

Deliberate stop
    A static member does not leave its group when its consumer closes (aiokafka skips LeaveGroup for
    it), which would make a scale-down wait out the session timeout. So after its consumers closed
    and committed, `KafkaBus.stop()` removes them by instance id (`GroupAdmin.leave`, LeaveGroup v3,
    which aiokafka does not provide: the request is defined here on aiokafka's protocol types). The
    group rebalances at once and the remaining members take the partitions over.

Two live processes with one id
    (A misconfiguration, or a frozen process resuming after its replacement started.) The newer one
    takes the member over. aiokafka's heartbeat carries no instance id, so the older one is not told
    it was fenced: it sees an unknown member id and would rejoin with the same instance id, fencing
    the newer one, which would do the same: the two would take the group from each other at every
    heartbeat. So before rejoining (on partitions revoked) a static consumer that held partitions
    asks the group who holds its instance id now (DescribeGroups v4, also defined here: aiokafka's
    stops at v3, which shows no instance ids). If another member id does, it was replaced by a live
    process: it logs an error and rejoins as a dynamic member, fencing nobody. (A member removed
    after its session expired finds its instance id unheld and rejoins as itself.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Bytes, Int16, Int32, Schema, String

from libs.bus.kafka.topics import close_admin, start_admin

MAX_ID: Final = 249
CHECK_TIMEOUT: Final = 2.0
UNKNOWN_MEMBER_ID: Final = 25
_ILLEGAL: Final = re.compile(r"[^a-zA-Z0-9._-]")

_log = logging.getLogger(__name__)


def static_id(replica: str, topic: str) -> str:
    """The group instance id of `replica`'s consumer of `topic` (legal and at most 249 characters)."""
    name = _ILLEGAL.sub("_", f"{replica}--{topic}")
    if len(name) <= MAX_ID:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[:MAX_ID - 17]}-{digest}"


class LeaveGroupResponse_v3(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32), ("error_code", Int16),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")),
                          ("error_code", Int16))),
    )


class LeaveGroupRequest_v3(RequestStruct):  # type: ignore[misc]
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = LeaveGroupResponse_v3
    SCHEMA = Schema(
        ("group_id", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")))),
    )


class LeaveStaticMembers(Request[LeaveGroupRequest_v3]):  # type: ignore[misc]
    """Remove members by instance id; the member id may be unknown (empty) for that."""

    API_KEY = 13

    def __init__(self, group: str, instance_ids: Iterable[str]) -> None:
        self._group = group
        self._ids = list(instance_ids)

    def build(self, request_struct_class: type[LeaveGroupRequest_v3]) -> LeaveGroupRequest_v3:
        return request_struct_class(self._group, [("", instance_id) for instance_id in self._ids])


class DescribeGroupsResponse_v4(Response):  # type: ignore[misc]
    API_KEY = 15
    API_VERSION = 4
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("groups", Array(
            ("error_code", Int16), ("group", String("utf-8")), ("state", String("utf-8")),
            ("protocol_type", String("utf-8")), ("protocol", String("utf-8")),
            ("members", Array(
                ("member_id", String("utf-8")), ("group_instance_id", String("utf-8")),
                ("client_id", String("utf-8")), ("client_host", String("utf-8")),
                ("member_metadata", Bytes), ("member_assignment", Bytes))),
            ("authorized_operations", Int32))),
    )


class DescribeGroupsRequest_v4(RequestStruct):  # type: ignore[misc]
    API_KEY = 15
    API_VERSION = 4
    RESPONSE_TYPE = DescribeGroupsResponse_v4
    SCHEMA = Schema(("groups", Array(String("utf-8"))), ("include_authorized_operations", Boolean))


class DescribeWithInstanceIds(Request[DescribeGroupsRequest_v4]):  # type: ignore[misc]
    API_KEY = 15

    def __init__(self, group: str) -> None:
        self._group = group

    def build(self, request_struct_class: type[DescribeGroupsRequest_v4]) -> DescribeGroupsRequest_v4:
        return request_struct_class([self._group], False)


class GroupAdmin:
    """One admin connection per bus (opened on first use) for the group requests aiokafka's consumer
    does not make: who holds an instance id (`taken_over`), and leaving by instance id (`leave`)."""

    def __init__(self, bootstrap: str, client_id: str, *, timeout: float) -> None:
        self._bootstrap = bootstrap
        self._client_id = f"{client_id}-groups"
        self._timeout = timeout
        self._admin: Any = None
        self._lock = asyncio.Lock()

    async def taken_over(self, group: str, instance_id: str, member_id: str) -> str | None:
        """The member id and client host now holding `instance_id` in `group` if that is not
        `member_id` (this consumer's last one); None if it is, if nobody does, or if the group
        cannot be read (logged: a rejoin must not wait for it)."""
        try:
            async with asyncio.timeout(min(self._timeout, CHECK_TIMEOUT)):
                admin = await self._connect()
                node = await admin.find_coordinator(group)
                response = await admin._send_request_to_node(node, DescribeWithInstanceIds(group))
        except (KafkaError, TimeoutError, OSError) as exc:
            _log.warning("could not read the members of %s (%r)", group, exc)
            return None
        holders = [f"{m[0]} at {m[3]}" for g in response.groups for m in g[5]
                   if m[1] == instance_id and m[0] != member_id]
        return holders[0] if holders else None

    async def leave(self, members: Mapping[str, list[str]]) -> None:
        """Remove the static `members` ({group: instance ids}) from their groups; logs rather than
        raises (the replica is stopping either way: at worst its partitions move after the session
        timeout)."""
        if not members:
            return
        try:
            async with asyncio.timeout(self._timeout):
                admin = await self._connect()
                for group, ids in members.items():
                    await _leave_group(admin, group, ids)
        except (KafkaError, TimeoutError, OSError) as exc:
            _log.warning("could not leave groups %s (%r): their partitions move after the session timeout",
                         sorted(members), exc)

    async def close(self) -> None:
        async with self._lock:
            admin, self._admin = self._admin, None
        if admin is not None:
            await close_admin(admin)

    async def _connect(self) -> Any:
        async with self._lock:
            if self._admin is None:
                self._admin = await start_admin(self._bootstrap, self._client_id, self._timeout)
            return self._admin


async def _leave_group(admin: Any, group: str, ids: list[str]) -> None:
    node = await admin.find_coordinator(group)
    response = await admin._send_request_to_node(node, LeaveStaticMembers(group, ids))  # no public call
    if response.error_code:
        raise for_code(response.error_code)(f"LeaveGroup {group}")
    for _member, instance_id, code in response.members:
        if code not in (0, UNKNOWN_MEMBER_ID):  # unknown: it never joined, or already left
            _log.warning("%s could not leave %s: %s", instance_id, group, for_code(code).__name__)
    _log.info("left %s: %s", group, ", ".join(ids))
