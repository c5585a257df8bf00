"""Settings shared by every service. Built once in `__main__` from `STEPLINE_*` variables (or passed
explicitly by tests and the embedded runtime); nothing reads the environment anywhere else."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.runtime.ai_settings import AiSettings
from libs.runtime.expression_settings import ExpressionSettings
from libs.runtime.limits import LimitSettings
from libs.secrets.cipher import parse_key


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class CommonSettings(BaseSettings, LimitSettings, ExpressionSettings, AiSettings):
    model_config = SettingsConfigDict(env_prefix="STEPLINE_", env_nested_delimiter="__", extra="ignore",
                                      hide_input_in_errors=True)

    data_dir: Path = Path(".stepline")
    """Embedded mode keeps its SQLite database here."""
    store_url: str = ""
    """`sqlite:///path/to.db` or `mongodb://host:port/`; empty means `<data_dir>/stepline.db`."""
    mongo_database: str = "stepline"
    bus_url: str = "memory://"
    """`memory://` (one process only) or `kafka://host:port[,host:port]`."""
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=0, ge=0, le=65535)
    """Services without an API serve `/healthz` and `/readyz` here; 0 turns that off."""
    partitions: int = Field(default=8, ge=1, le=1024)
    instance_id: str = Field(default_factory=default_instance_id)
    """This replica's id: keep it stable across restarts of one replica and unique between replicas
    (Kafka static membership keys each consumer by it, libs/bus/kafka/membership.py)."""
    kafka_session_timeout: float = Field(default=10.0, gt=0)
    """Seconds a Kafka consumer that stopped heartbeating (crashed) keeps its partitions; the broker
    accepts 6–1800 unless its group.min/max.session.timeout.ms say otherwise."""
    kafka_heartbeat_interval: float = Field(default=1.0, gt=0)
    """Seconds between consumer heartbeats (below the session timeout): members learn of a
    rebalance at their next heartbeat."""
    kafka_rebalance_timeout: float | None = Field(default=None, gt=0)
    """Seconds a rebalance waits for every member to rejoin; unset: the session timeout."""
    kafka_static_membership: bool = True
    """Join consumer groups as static members keyed by `instance_id` (a restarted replica gets its
    partitions back without a rebalance); false: a new dynamic member on every start."""
    lease_seconds: float = Field(default=30.0, gt=0)
    """How long an executor's claim on a node run lasts without renewal."""
    stale_seconds: float = Field(default=10.0, gt=0)
    """A run idle this long is reconciled by the sweeper."""
    sweep_interval_seconds: float = Field(default=1.0, gt=0)
    secrets_key: str = ""
    """Base64 of 32 random bytes: the AES-GCM key that seals secrets. Embedded mode (and `up
    --distributed`) creates `<data_dir>/secrets.key` when it is empty; a service without one
    refuses secrets (409) and nodes that use them fail."""

    @field_validator("secrets_key")
    @classmethod
    def _secrets_key_is_a_key(cls, value: str) -> str:
        if value.strip():
            parse_key(value)  # a clear start-up error that never quotes the value
        return value.strip()

    def sqlite_path(self) -> str:
        if self.store_url.startswith("sqlite:///"):
            return self.store_url.removeprefix("sqlite:///")
        return str(self.data_dir / "stepline.db")
