"""Settings shared by every service. Built once in `__main__` from `STEPLINE_*` variables (or passed
explicitly by tests and the embedded runtime); nothing reads the environment anywhere else."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEPLINE_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path(".stepline")
    """Embedded mode keeps its SQLite database here."""
    store_url: str = ""
    """`sqlite:///path/to.db`; empty means `<data_dir>/stepline.db`."""
    partitions: int = Field(default=8, ge=1, le=1024)
    instance_id: str = Field(default_factory=default_instance_id)
    lease_seconds: float = Field(default=30.0, gt=0)
    """How long an executor's claim on a node run lasts without renewal."""
    stale_seconds: float = Field(default=10.0, gt=0)
    """A run idle this long is reconciled by the sweeper."""
    sweep_interval_seconds: float = Field(default=1.0, gt=0)
    secrets_key: str = ""

    def sqlite_path(self) -> str:
        if self.store_url.startswith("sqlite:///"):
            return self.store_url.removeprefix("sqlite:///")
        return str(self.data_dir / "stepline.db")
