"""Model providers: a named endpoint of one of two wire formats (OpenAI-compatible Chat Completions,
Anthropic Messages) with a default model and the name of the secret holding its API key. Declared in
settings (`STEPLINE_AI_PROVIDERS`, libs/runtime/ai_settings.py); the key's value never appears here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ProviderKind = Literal["openai", "anthropic"]
PROVIDER_KINDS: tuple[ProviderKind, ...] = ("openai", "anthropic")


@dataclass(frozen=True)
class Provider:
    """A configured model endpoint. `api_key_secret` names a secret in the secret store; its value
    is read per call and never logged or returned."""

    name: str
    kind: ProviderKind
    base_url: str
    model: str
    api_key_secret: str | None = None

    def public(self) -> dict[str, Any]:
        """What `GET /v1/ai/providers` shows (the secret's name, never its value)."""
        return {"name": self.name, "kind": self.kind, "baseUrl": self.base_url, "model": self.model,
                "apiKeySecret": self.api_key_secret}
