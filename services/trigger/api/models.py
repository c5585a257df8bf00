"""Request bodies and parameter types. Unknown body fields are refused, so a typo is named in a 422."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from libs.core.run import LogLevel

MAX_VERSION = 2_147_483_647
VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION)]
RunStatusName = Literal["IN_PROGRESS", "COMPLETED"]
RunResultName = Literal["SUCCESS", "FAILED", "CANCELLED"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRunBody(_Body):
    inputs: dict[str, Any] | None = None
    """Validated against the SELF_SERVE_TRIGGER's `userInputs` (defaults applied)."""
    version: VersionNumber | None = None
    tag: str | None = Field(default=None, max_length=200)
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=255)


class TagBody(_Body):
    version: VersionNumber


class LogInput(_Body):
    """Port's `{logLevel, log, tags}`, or its later `{level, message}` (docs.port.io/workflows/runs)."""

    logLevel: LogLevel = "INFO"
    log: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _later_shape(cls, value: Any) -> Any:
        if isinstance(value, dict) and ("level" in value or "message" in value):
            renamed = {"level": "logLevel", "message": "log"}
            return {renamed.get(k, k): v for k, v in value.items()}
        return value


class LogsBody(_Body):
    logs: list[LogInput] = Field(min_length=1)


class NodeRunPatch(_Body):
    """`status` defaults to COMPLETED when a `result` is given, else to IN_PROGRESS (progress logs)."""

    status: Literal["IN_PROGRESS", "COMPLETED"] | None = None
    result: Literal["SUCCESS", "FAILED", "CANCELLED"] | None = Field(default=None, validate_default=True)
    """CANCELLED (Port's): the node run ends CANCELLED, and the run goes on as after a failure."""
    output: Any = None
    logs: list[LogInput] = Field(default_factory=list)
    """At most STEPLINE_MAX_LOG_ENTRIES_PER_NODE_RUN per node run, all PATCHes together (else 413)."""

    @field_validator("result")
    @classmethod
    def _result_matches_status(cls, value: str | None, info: ValidationInfo) -> str | None:
        status = info.data.get("status")
        if value is None and status == "COMPLETED":
            raise ValueError("result is required when status is COMPLETED")
        if value is not None and status == "IN_PROGRESS":
            raise ValueError("result is only allowed when status is COMPLETED")
        return value

    @property
    def effective_status(self) -> Literal["IN_PROGRESS", "COMPLETED"]:
        if self.status is not None:
            return self.status
        return "COMPLETED" if self.result is not None else "IN_PROGRESS"

    @property
    def output_given(self) -> bool:
        return "output" in self.model_fields_set


class RerunBody(_Body):
    from_: Literal["start", "failed"] = Field(default="start", alias="from")
    """`start`: run everything again with the same inputs; `failed`: reuse the outputs of the nodes
    that succeeded and execute the rest."""
