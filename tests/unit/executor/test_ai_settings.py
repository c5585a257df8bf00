"""AI settings from the environment: providers as a JSON list, refused when malformed (naming the
field, never echoing values), and workspace guardrails checked against the node's guardrails schema."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services.executor.settings import ExecutorSettings

PROVIDERS = [{"name": "local", "kind": "openai", "baseUrl": "http://127.0.0.1:18080/v1/", "model": "m"},
             {"name": "claude", "kind": "anthropic", "baseUrl": "https://api.anthropic.com", "model": "c",
              "apiKeySecret": "ANTHROPIC_KEY"}]


def test_providers_come_from_a_json_list_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPLINE_AI_PROVIDERS", json.dumps(PROVIDERS))
    providers = ExecutorSettings().providers()
    assert list(providers) == ["local", "claude"]
    assert providers["local"].base_url == "http://127.0.0.1:18080/v1", "a trailing slash is dropped"
    assert providers["claude"].public() == {"name": "claude", "kind": "anthropic", "baseUrl": "https://api.anthropic.com",
                                            "model": "c", "apiKeySecret": "ANTHROPIC_KEY"}


@pytest.mark.parametrize("entry, field", [
    ({"name": "x", "kind": "gemini", "baseUrl": "http://h", "model": "m"}, "kind"),
    ({"name": "x", "kind": "openai", "baseUrl": "ftp://h", "model": "m"}, "baseUrl"),
    ({"name": "x", "kind": "openai", "baseUrl": "http://h", "model": "m", "apiKey": "sk-123"}, "apiKey"),
])
def test_a_malformed_provider_is_refused_naming_the_field(entry: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ExecutorSettings(ai_providers=[entry])  # type: ignore[list-item]
    assert field in str(caught.value)
    assert "sk-123" not in str(caught.value)


def test_provider_names_are_unique() -> None:
    with pytest.raises(ValidationError, match="names must be unique"):
        ExecutorSettings(ai_providers=[PROVIDERS[0], PROVIDERS[0]])  # type: ignore[list-item]


def test_workspace_guardrails_are_checked_and_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPLINE_AI_GUARDRAILS", json.dumps({"*": {"bannedKeywords": ["a"]},
                                                             "team-a": {"pii": {"action": "block"}}}))
    settings = ExecutorSettings()
    assert settings.guardrails_of("team-a") == [{"bannedKeywords": ["a"]}, {"pii": {"action": "block"}}]
    assert settings.guardrails_of("other") == [{"bannedKeywords": ["a"]}]
    with pytest.raises(ValidationError, match="team-a/pii/action"):
        ExecutorSettings(ai_guardrails={"team-a": {"pii": {"action": "shred"}}})
