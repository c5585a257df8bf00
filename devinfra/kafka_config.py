"""The files a development broker runs from: its KRaft `server.properties`, its log4j configuration,
and its data directory's cluster id."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from devinfra.ports import LOOPBACK


def kafka_properties(log_dir: Path, port: int, controller_port: int) -> str:
    return "\n".join([
        "# written by devinfra on every start",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{LOOPBACK}:{controller_port}",
        f"listeners=PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        f"advertised.listeners=PLAINTEXT://{LOOPBACK}:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={log_dir}",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=8",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=4",
        "num.partitions=8",
        "default.replication.factor=1",
        "group.initial.rebalance.delay.ms=0",
        # A broker killed with SIGKILL stays registered until its session times out (default 9 s,
        # then exponential retries): a short session lets a crashed broker rejoin in seconds.
        "broker.heartbeat.interval.ms=500",
        "broker.session.timeout.ms=3000",
        "auto.create.topics.enable=true",
        "delete.topic.enable=true",
        "num.network.threads=2",
        "num.io.threads=4",
        "",
    ])


KAFKA_LOG4J = """\
# written by devinfra: everything goes to stdout, which is redirected to kafka.log
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.org.apache.kafka.storage.internals.log.LogLoader=WARN
"""


def cluster_id(data_dir: Path) -> str:
    """The data directory's KRaft cluster id, created once (22 chars of URL-safe base64)."""
    path = data_dir / "cluster-id"
    if path.is_file():
        return path.read_text().strip()
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            break
    path.write_text(cid + "\n")
    return cid
