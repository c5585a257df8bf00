"""The model-provider client: one chat call to a configured provider, in its wire format, through
the engine's guarded HTTP client (the egress rules apply to model endpoints like any request).

- The API key is read from the secret store by the name the provider gives (`apiKeySecret`) on every
  call, through the executor's tracked reader, so it is masked in whatever the attempt stores; it goes
  into a request header only and never into a log line, error or output.
- Each HTTP request has the `ai_timeout_seconds` time-out. A 429 or 5xx answer, a time-out or a
  broken connection is retried up to `ai_max_retries` times, after the answer's `Retry-After` when it
  sends one (at most `ai_max_retry_after_seconds`; a longer one fails the attempt at once) or else an
  exponential pause. What is still failing after that fails the attempt as retryable, for the node's
  retry policy. Other 4xx answers and malformed replies are not retryable.
- With a `TokenBudget` the call is refused when the budget is used up, its `max_tokens` is lowered to
  what is left, and the reply's usage is charged to it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from libs.core.errors import ActionError
from libs.core.secrets import SecretReader
from libs.runtime.ai_settings import AiSettings
from services.executor.actions import bounded_http
from services.executor.ai import wire_anthropic, wire_openai
from services.executor.ai.budget import TokenBudget
from services.executor.ai.models import Message, Provider, Reply, ToolSpec
from services.executor.ai.wire_common import MalformedReply

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
Sleep = Callable[[float], Awaitable[None]]


class ProviderError(ActionError):
    code = "ai_provider_failed"


class ChatClient:
    """Built once per executor from the shared guarded httpx client, the settings and the secret reader."""

    def __init__(self, client: httpx.AsyncClient, settings: AiSettings, secrets: SecretReader, *,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.client = client
        self.settings = settings
        self.secrets = secrets
        self.sleep = sleep
        self.providers = settings.providers()

    def provider(self, name: str | None) -> Provider:
        """The provider named `name`, or the first configured one; a non-retryable ActionError naming
        the configured ones otherwise."""
        if not self.providers:
            raise ProviderError("no AI provider is configured (set STEPLINE_AI_PROVIDERS)")
        if name is None or name == "":
            return next(iter(self.providers.values()))
        found = self.providers.get(name)
        if found is None:
            raise ProviderError(f"config.provider {name!r} is not a configured AI provider "
                                f"(configured: {', '.join(sorted(self.providers))})")
        return found

    async def chat(self, provider: Provider, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                   json_mode: bool = False, max_tokens: int | None = None, model: str | None = None,
                   budget: TokenBudget | None = None) -> Reply:
        if budget is not None:
            budget.check()
            max_tokens = budget.max_tokens(max_tokens)
        wire = wire_anthropic if provider.kind == "anthropic" else wire_openai
        chosen = model or provider.model
        headers = wire.headers(await self.api_key(provider))
        payload = wire.body(chosen, messages, tools, json_mode=json_mode, max_tokens=max_tokens)
        data = await self._post(provider, wire.url(provider.base_url), headers, payload)
        try:
            reply: Reply = wire.reply(data, chosen)
        except MalformedReply as exc:
            raise ProviderError(f"AI provider {provider.name!r} sent a malformed reply: {exc}") from None
        if budget is not None:
            budget.charge(reply.usage)
        return reply

    async def api_key(self, provider: Provider) -> str | None:
        """The provider's API key from the secret store (None when it names none)."""
        if provider.api_key_secret is None:
            return None
        value = await self.secrets.reveal(provider.api_key_secret)
        if value is None:
            raise ProviderError(f"secret {provider.api_key_secret!r} (the API key of AI provider "
                                f"{provider.name!r}) does not exist")
        return value

    async def _post(self, provider: Provider, url: str, headers: dict[str, str], payload: dict[str, Any]) -> Any:
        attempt = 0
        while True:
            try:
                received = await bounded_http.request(
                    self.client, "POST", url, limit=self.settings.ai_max_response_bytes, headers=headers,
                    json=payload, timeout=self.settings.ai_timeout_seconds)
            except httpx.HTTPError as exc:
                failure = _transport_failure(provider, exc)
                await self._pause_or_raise(failure, None, attempt)
            else:
                if received.status < 300:
                    return _json(provider, received)
                failure = _status_failure(provider, received)
                await self._pause_or_raise(failure, received, attempt)
            attempt += 1

    async def _pause_or_raise(self, failure: ProviderError, received: bounded_http.Received | None,
                              attempt: int) -> None:
        """Wait before the next try of a retryable failure; raise `failure` when none is left."""
        if not failure.retryable or attempt >= self.settings.ai_max_retries:
            raise failure
        wait = retry_after(received.headers if received is not None else {})
        if wait is None:
            wait = min(0.25 * 2 ** attempt, self.settings.ai_max_retry_after_seconds)
        elif wait > self.settings.ai_max_retry_after_seconds:
            raise ProviderError(f"{failure.message}; Retry-After {wait:g}s is beyond "
                                f"ai_max_retry_after_seconds", retryable=True) from None
        await self.sleep(wait)


def retry_after(headers: Any) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None without a usable one."""
    raw = headers.get("retry-after") if headers is not None else None
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _transport_failure(provider: Provider, exc: httpx.HTTPError) -> ProviderError:
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else f"failed: {type(exc).__name__}"
    return ProviderError(f"the call to AI provider {provider.name!r} {what}", retryable=True)


def _status_failure(provider: Provider, received: bounded_http.Received) -> ProviderError:
    return ProviderError(f"AI provider {provider.name!r} answered HTTP {received.status}"
                         f"{_reason(received.body)}", retryable=received.status in RETRYABLE_STATUS)


def _reason(body: bytes) -> str:
    """The provider's own error message, short (`{"error": {"message": ...}}` in both formats)."""
    try:
        data = json.loads(body)
        message = data["error"]["message"] if isinstance(data["error"], dict) else data["error"]
    except (ValueError, KeyError, TypeError):
        return ""
    text = str(message)
    return f": {text if len(text) <= 200 else text[:197] + '...'}"


def _json(provider: Provider, received: bounded_http.Received) -> Any:
    if received.truncated:
        raise ProviderError(f"the reply of AI provider {provider.name!r} is larger than ai_max_response_bytes")
    try:
        return json.loads(received.body)
    except ValueError:
        raise ProviderError(f"AI provider {provider.name!r} answered with a body that is not JSON") from None
