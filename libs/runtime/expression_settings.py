"""The bounded-expression settings every service shares (STEPLINE_ prefix through CommonSettings).
What each limit means is in libs/expressions/limits.py."""

from __future__ import annotations

from pydantic import BaseModel, Field

from libs.expressions.limits import MIB, Limits


class ExpressionSettings(BaseModel):
    expression_timeout: float = Field(default=2.0, gt=0)
    """Seconds one evaluation of a user jq expression may take (`STEPLINE_EXPRESSION_TIMEOUT`)."""
    expression_memory_mb: int = Field(default=256, ge=16)
    """MiB of memory one evaluation may allocate."""
    expression_workers: int = Field(default=2, ge=1, le=64)
    """Worker processes that evaluate expressions outside the cheap in-process subset."""
    expression_regex_input_limit: int = Field(default=65_536, ge=1)
    """Characters a jq regex builtin (`test`, `match`, `sub`, …) accepts as its input string."""

    def expression_limits(self) -> Limits:
        return Limits(timeout=self.expression_timeout, memory_bytes=self.expression_memory_mb * MIB,
                      workers=self.expression_workers, regex_input=self.expression_regex_input_limit)
