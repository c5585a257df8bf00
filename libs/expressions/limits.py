"""The limits of one evaluation, from `STEPLINE_EXPRESSION_*` settings (libs/runtime/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    timeout: float = 2.0
    """Seconds one evaluation may take in a worker (`STEPLINE_EXPRESSION_TIMEOUT`)."""
    memory_bytes: int = 256 * MIB
    """Address space a worker may add beyond its idle size (`STEPLINE_EXPRESSION_MEMORY_MB`)."""
    workers: int = 2
    """Worker processes, started on first use (`STEPLINE_EXPRESSION_WORKERS`)."""
    regex_input: int = 65_536
    """Characters a regex builtin accepts as input (`STEPLINE_EXPRESSION_REGEX_INPUT_LIMIT`)."""

    def describe_timeout(self) -> str:
        return f"exceeded {self.timeout:g} s"

    def describe_memory(self) -> str:
        return f"exceeded the memory limit of {self.memory_bytes / MIB:g} MiB"
