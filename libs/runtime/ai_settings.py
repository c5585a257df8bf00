"""The AI settings every service shares (STEPLINE_ prefix through CommonSettings): the model
providers (read by the executor's AI nodes and shown by `GET /v1/ai/providers`), call time-outs,
retries, the per-run token budget and the workspace guardrails."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from libs.core.ai_nodes import GUARDRAILS
from libs.core.ai_providers import Provider
from libs.core.schema_dialect import issues, make_validator
from libs.core.secrets import SECRET_NAME_PATTERN


class ProviderSetting(BaseModel):
    """One entry of `STEPLINE_AI_PROVIDERS` (a JSON list)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,60}$")
    kind: Literal["openai", "anthropic"]
    baseUrl: str = Field(pattern=r"^https?://")
    model: str = Field(min_length=1)
    apiKeySecret: str | None = Field(default=None, pattern=SECRET_NAME_PATTERN)

    def provider(self) -> Provider:
        return Provider(name=self.name, kind=self.kind, base_url=self.baseUrl.rstrip("/"), model=self.model,
                        api_key_secret=self.apiKeySecret)


class AiSettings(BaseModel):
    ai_providers: list[ProviderSetting] = Field(default_factory=list)
    """`[{"name", "kind": "openai"|"anthropic", "baseUrl", "model", "apiKeySecret"}]`; the first one is
    the default of AI nodes that name no `provider`."""
    ai_timeout_seconds: float = Field(default=60.0, gt=0)
    """One model call (one HTTP request); the node's `timeoutSeconds` still bounds the whole attempt."""
    ai_max_retries: int = Field(default=3, ge=0, le=10)
    """Retries of a call answered 429 or 5xx (or timed out) within one attempt."""
    ai_max_retry_after_seconds: float = Field(default=30.0, ge=0)
    """The longest `Retry-After` honoured; a longer one fails the attempt (retryable by the node's policy)."""
    ai_max_response_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    ai_run_token_budget: int = Field(default=0, ge=0)
    """Input plus output tokens all AI steps of one run may spend; 0: no run budget."""
    ai_guardrails: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Guardrails of every AI step, by workspace (`*`: all of them), each of the shape of an AI node's
    `guardrails` (libs/core/ai_nodes.py); a node's own add to them and never loosen them."""

    @field_validator("ai_guardrails")
    @classmethod
    def _guardrails_shape(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        validator = make_validator(GUARDRAILS)
        for workspace, config in value.items():
            found = issues(validator, config, "", f"STEPLINE_AI_GUARDRAILS[{workspace!r}]")
            if found:
                raise ValueError("; ".join(f"{workspace}{i.pointer}: {i.message}" for i in found))
        return value

    def guardrails_of(self, workspace: str) -> list[dict[str, Any]]:
        """The workspace-level guardrail configs of `workspace`: `*` first, then its own."""
        return [c for c in (self.ai_guardrails.get("*"), self.ai_guardrails.get(workspace)) if c]

    @field_validator("ai_providers")
    @classmethod
    def _unique_names(cls, value: list[ProviderSetting]) -> list[ProviderSetting]:
        names = [p.name for p in value]
        if len(names) != len(set(names)):
            raise ValueError("STEPLINE_AI_PROVIDERS names must be unique")
        return value

    def providers(self) -> dict[str, Provider]:
        """By name, in the order configured."""
        return {p.name: p.provider() for p in self.ai_providers}
