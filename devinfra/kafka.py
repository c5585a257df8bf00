"""The development Kafka broker: its jars fetched by Maven, a class-data-sharing archive recorded once,
and a single-node KRaft broker+controller started on 127.0.0.1 and probed until it serves."""

from __future__ import annotations

import os
import shlex
import struct
from pathlib import Path

from devinfra.cache import files_digest, fresh, locked, rmtree, run_logged
from devinfra.errors import InfraError, MissingToolError
from devinfra.kafka_config import KAFKA_LOG4J, cluster_id, kafka_properties
from devinfra.kafka_probe import kafka_metadata
from devinfra.logs import log_contains
from devinfra.ports import LOOPBACK, free_port
from devinfra.server import Server
from devinfra.tools import INSTALL_HINTS, find_tool, java_major, java_version

KAFKA_READY_TIMEOUT = 60.0
DEFAULT_KAFKA_PORT = 19092

_KAFKA_STARTED_LINE = "Kafka Server started"


def kafka_ready(server: Server, offset: int | None) -> bool:
    """The broker logged that it started, and it answers a metadata request naming a controller."""
    if offset is not None and not log_contains(server.log_path, offset, _KAFKA_STARTED_LINE):
        return False
    try:
        brokers, controller = kafka_metadata(server.port)
    except (OSError, ValueError, struct.error):
        return False
    return bool(brokers) and controller >= 0


class KafkaMixin:
    """The Kafka half of `DevInfra` (which defines the attributes declared here)."""

    cache_dir: Path
    deploy_dir: Path
    _java_version_text: str

    @property
    def kafka_lib(self) -> Path:
        return self.cache_dir / "kafka" / "lib"

    @property
    def kafka_cds_archive(self) -> Path:
        """A class-data-sharing archive of the broker's classes: it halves the JVM's start time."""
        return self.cache_dir / "kafka" / "kafka.jsa"

    def ensure_kafka(self) -> Path:
        """The directory of the broker's jars, fetched by Maven when missing or out of date.

        After a fetch (or a change of Java) it also starts a throw-away broker once to record a
        class-data-sharing archive of the classes it loads; later brokers map it and start faster.
        """
        pom = self.deploy_dir / "kafka" / "pom.xml"
        if not pom.is_file():
            raise InfraError(f"{pom} is missing (is this a Stepline source checkout?)")
        java = self._java()
        kafka_dir = self.cache_dir / "kafka"
        with locked(self.cache_dir / ".lock"):
            digest = files_digest([pom])
            if not (fresh(kafka_dir / "stamp", digest) and any(self.kafka_lib.glob("kafka_2.13-*.jar"))):
                self._fetch_kafka(pom, java)
                (kafka_dir / "stamp").write_text(digest + "\n")
            cds_digest = files_digest([pom], self._java_version_text)
            if not fresh(kafka_dir / "cds.stamp", cds_digest):
                self._record_kafka_cds()
                (kafka_dir / "cds.stamp").write_text(cds_digest + "\n")
        return self.kafka_lib

    def start_kafka(self, data_dir: Path, *, port: int, controller_port: int,
                    timeout: float = KAFKA_READY_TIMEOUT, heap: str = "512m") -> Server:
        """Start a single-node KRaft broker+controller on 127.0.0.1:`port`; wait until it serves."""
        self.ensure_kafka()
        return self._kafka_server(data_dir, port=port, controller_port=controller_port,
                                  timeout=timeout, heap=heap).start()

    def _java(self) -> str:
        java = find_tool("java")
        if not self._java_version_text:
            self._java_version_text = java_version(java)
        major = java_major(self._java_version_text)
        if major < 17:
            raise MissingToolError("java", f"(version 17 or newer; found {major or 'unknown'}) "
                                   "to run the Kafka broker", INSTALL_HINTS["java"][1])
        return java

    def _fetch_kafka(self, pom: Path, java: str) -> None:
        mvn = find_tool("mvn")
        staging = self.kafka_lib.with_name("lib.partial")
        rmtree(staging)
        run_logged([mvn, "-B", "-q", "--no-transfer-progress", "-Dstyle.color=never", "-f", str(pom),
                    f"-Dmaven.repo.local={self.cache_dir / 'm2'}",
                    "dependency:copy-dependencies", f"-DoutputDirectory={staging}"],
                   log=self.cache_dir / "kafka" / "mvn.log", what="fetching Kafka with Maven",
                   env={**os.environ, "JAVA_HOME": str(Path(java).resolve().parents[1])})
        if not any(staging.glob("kafka_2.13-*.jar")):
            raise InfraError(f"Maven finished but {staging} holds no kafka_2.13 jar")
        rmtree(self.kafka_lib)
        staging.rename(self.kafka_lib)

    def _record_kafka_cds(self) -> None:
        """Run a broker once with -XX:ArchiveClassesAtExit; without an archive brokers just start slower."""
        archive = self.kafka_cds_archive
        partial = archive.with_name(archive.name + ".partial")
        training = self.cache_dir / "kafka" / "cds-training"
        for stale in (archive, partial):
            stale.unlink(missing_ok=True)
        rmtree(training)
        try:
            server = self._kafka_server(training, port=free_port(), controller_port=free_port(),
                                        timeout=KAFKA_READY_TIMEOUT, heap="512m", record_cds=partial)
            server.start()
            server.stop()
            if partial.is_file():
                partial.rename(archive)
        except InfraError as exc:
            (self.cache_dir / "kafka" / "cds.log").write_text(f"no CDS archive: {exc.message}\n")
        finally:
            rmtree(training)

    def _kafka_server(self, data_dir: Path, *, port: int, controller_port: int, timeout: float,
                      heap: str, record_cds: Path | None = None) -> Server:
        """Write the broker's configuration into `data_dir`, format its storage once, and describe
        the broker process (not started): it maps the CDS archive, or records one to `record_cds`."""
        java = self._java()
        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        props = data_dir / "server.properties"
        props.write_text(kafka_properties(data_dir / "kraft-logs", port, controller_port))
        log4j = data_dir / "log4j.properties"
        log4j.write_text(KAFKA_LOG4J)
        # C1 only (TieredStopAtLevel=1): a development broker starts about twice as fast on a small
        # machine; STEPLINE_KAFKA_JVM_OPTS is appended last and can override any of these.
        archive = self.kafka_cds_archive
        cds = [f"-XX:SharedArchiveFile={archive}"] if archive.is_file() and record_cds is None else []
        jvm = [java, f"-Xmx{heap}", "-Xms128m", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1", *cds,
               "-Djava.awt.headless=true", f"-Dlog4j.configuration={log4j.as_uri()}",
               *shlex.split(os.environ.get("STEPLINE_KAFKA_JVM_OPTS", "")),
               "-cp", f"{self.kafka_lib}/*"]
        if not (data_dir / "kraft-logs" / "meta.properties").exists():
            run_logged([*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id(data_dir),
                        "-c", str(props), "--ignore-formatted"],
                       log=data_dir / "format.log", what="formatting Kafka storage")
        if record_cds is not None:
            jvm.insert(1, f"-XX:ArchiveClassesAtExit={record_cds}")
        return Server(name="kafka", url=f"{LOOPBACK}:{port}", port=port,
                      argv=[*jvm, "kafka.Kafka", str(props)], log_path=data_dir / "kafka.log",
                      ready_timeout=timeout, ready_check=kafka_ready, cwd=data_dir,
                      other_ports=(controller_port,))
