"""The provider client against the scripted model server, through the guarded HTTP client: how long
it waits between retries (`Retry-After` in seconds or as a date, bounded; exponential otherwise), when
it stops, and that the key is read from the secret reader on every call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from libs.core.errors import ActionError
from libs.runtime.egress import guarded_client
from services.executor.ai.client import ChatClient, retry_after
from services.executor.ai.models import Message
from services.executor.settings import ExecutorSettings
from tests.service.scripted_model import Answer, Failure, ScriptedModel, scripted_model

HI = (Message("user", "hi"),)


class Secrets:
    def __init__(self) -> None:
        self.values = {"K": "key-1"}
        self.reads: list[str] = []

    async def reveal(self, name: str) -> str | None:
        self.reads.append(name)
        return self.values.get(name)


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with scripted_model() as m:
        yield m


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with guarded_client(ExecutorSettings().egress_policy()) as client:
        yield client


def client_for(http: httpx.AsyncClient, model: ScriptedModel, waits: list[float],
               **settings: object) -> tuple[ChatClient, Secrets]:
    cfg = ExecutorSettings(ai_providers=[{"name": "p", "kind": "openai", "baseUrl": model.openai_url, "model": "m",
                                          "apiKeySecret": "K"}], **settings)  # type: ignore[arg-type]
    secrets = Secrets()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
    return ChatClient(http, cfg, secrets, sleep=sleep), secrets


async def test_retry_after_is_honoured_and_other_failures_back_off(http: httpx.AsyncClient, model: ScriptedModel) -> None:
    waits: list[float] = []
    chat, secrets = client_for(http, model, waits, ai_max_retries=3)
    model.script(Failure(429, {"Retry-After": "2"}), Failure(502), Failure(503), Answer("done"))
    reply = await chat.chat(chat.provider(None), HI)
    assert reply.content == "done"
    assert waits == [2.0, 0.5, 1.0]
    assert len(model.requests) == 4
    assert all(r["headers"]["authorization"] == "Bearer key-1" for r in model.requests)
    assert secrets.reads == ["K"], "the key is read once per call"


async def test_retries_stop_at_the_limit_as_a_retryable_failure(http: httpx.AsyncClient, model: ScriptedModel) -> None:
    waits: list[float] = []
    chat, _ = client_for(http, model, waits, ai_max_retries=1)
    model.script(Failure(500), Failure(500), Answer("never"))
    with pytest.raises(ActionError) as caught:
        await chat.chat(chat.provider("p"), HI)
    assert caught.value.retryable and caught.value.message == "AI provider 'p' answered HTTP 500: scripted failure"
    assert len(model.requests) == 2 and waits == [0.25]


async def test_a_retry_after_beyond_the_bound_fails_at_once(http: httpx.AsyncClient, model: ScriptedModel) -> None:
    waits: list[float] = []
    chat, _ = client_for(http, model, waits, ai_max_retry_after_seconds=5)
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)
    model.script(Failure(503, {"Retry-After": later}))
    with pytest.raises(ActionError, match="Retry-After .*s is beyond ai_max_retry_after_seconds") as caught:
        await chat.chat(chat.provider("p"), HI)
    assert caught.value.retryable and waits == [] and len(model.requests) == 1


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
    past = format_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True)
    assert retry_after({"retry-after": past}) == 0.0


async def test_a_reply_that_is_not_the_format_is_not_retried(http: httpx.AsyncClient, model: ScriptedModel) -> None:
    waits: list[float] = []
    chat, _ = client_for(http, model, waits)
    model.script(Failure(200, body={"unexpected": True}))
    with pytest.raises(ActionError, match="sent a malformed reply") as caught:
        await chat.chat(chat.provider("p"), HI)
    assert not caught.value.retryable and waits == []
