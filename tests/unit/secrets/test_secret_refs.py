"""Which secrets a node config uses, and masking revealed values in what the executor stores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from libs.core.errors import SecretError
from libs.core.redaction import redact_text, redact_value, secret_values
from libs.core.run import LogEntry, Outcome
from libs.core.secret_refs import SecretRefs, secret_refs
from libs.secrets.vault import KeylessSecrets
from services.executor.secret_use import TrackedSecrets, redact_outcome, redacted_failure, tracking


@pytest.mark.parametrize("config, expected", [
    ({"url": "http://example.test/secrets/1"}, SecretRefs()),
    ({"url": "{{ .inputs.url }}"}, SecretRefs()),
    ({"headers": {"Authorization": 'Bearer {{ .secrets["token"] }}'}}, SecretRefs(frozenset({"token"}))),
    ({"a": '{{ .secrets.API_TOKEN }}-{{ .secrets."with space" }}', "b": ['{{ (.secrets?["x"]) }}']},
     SecretRefs(frozenset({"API_TOKEN", "with space", "x"}))),
    ({"options": [{"identifier": "on", "expression": '.secrets.flag == "on"'}]}, SecretRefs(frozenset({"flag"}))),
    ({"x": "{{ .outputs.secrets.x }}", "y": '{{ .outputs["n"].secrets }}', "expression": ".outputs.secrets"},
     SecretRefs()),
    ({"x": "{{ .secrets | keys }}"}, SecretRefs(every=True)),
    ({"x": "{{ . as $c | $c.secrets.x }}"}, SecretRefs(every=True)),
    ({"expression": '.["secrets"]'}, SecretRefs(every=True)),
])
def test_secret_refs(config: dict[str, Any], expected: SecretRefs) -> None:
    assert secret_refs(config) == expected


def test_values_are_masked_everywhere_in_json_longest_first() -> None:
    values = secret_values({"a": "abc", "b": "abcdef", "q": 'say "hi"'})
    assert redact_text("x abcdef y abc", values) == "x *** y ***"
    assert redact_value({"abc": ["abcdef", 1, None, {"k": 'text {"v": "say \\"hi\\""}'}]}, values) == {
        "***": ["***", 1, None, {"k": 'text {"v": "***"}'}]}


def test_redact_outcome_masks_output_error_and_logs() -> None:
    completion = Outcome(result="FAILED", output={"echo": "Bearer tok-123"}, error="bad url 'tok-123'",
                            logs=(LogEntry(log="sent tok-123", tags={"t": "tok-123"}),), retryable=True)
    masked = redact_outcome(completion, {"tok-123"})
    assert masked.output == {"echo": "Bearer ***"}
    assert masked.error == "bad url '***'"
    assert (masked.logs[0].log, masked.logs[0].tags) == ("sent ***", {"t": "***"})
    assert masked.retryable and masked.result == "FAILED"
    assert redact_outcome(completion, set()) is completion


def test_unexpected_failures_lose_the_values() -> None:
    failure = redacted_failure(ValueError("could not parse tok-123"), {"tok-123"})
    assert str(failure) == "ValueError: could not parse ***"


class Fixed:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    async def reveal(self, name: str) -> str | None:
        return self.values.get(name)

    async def names(self) -> list[str]:
        return sorted(self.values)


async def test_values_revealed_by_an_action_in_another_task_are_tracked() -> None:
    secrets = TrackedSecrets(Fixed({"t": "value-1"}))
    with tracking() as seen:
        assert await asyncio.wait_for(secrets.reveal("t"), timeout=5) == "value-1"
        assert await secrets.reveal("absent") is None
    assert seen == {"value-1"}
    assert await secrets.reveal("t") == "value-1", "outside an attempt nothing is recorded, nothing fails"


async def test_template_secrets_named_every_and_missing() -> None:
    fixed = Fixed({"a": "1", "b": "2"})
    secrets = TrackedSecrets(fixed)
    assert await secrets.for_templates(SecretRefs(frozenset({"a"}))) == {"a": "1"}
    assert await secrets.for_templates(SecretRefs(every=True)) == {}, "a node sees only the secrets it names"
    with pytest.raises(SecretError, match="'zzz' does not exist"):
        await secrets.for_templates(SecretRefs(frozenset({"a", "zzz"})))


async def test_without_a_key_nodes_using_secrets_fail_clearly() -> None:
    secrets = TrackedSecrets(KeylessSecrets())
    with pytest.raises(SecretError, match="STEPLINE_SECRETS_KEY"):
        await secrets.for_templates(SecretRefs(frozenset({"t"})))
