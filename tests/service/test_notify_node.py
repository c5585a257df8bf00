"""NOTIFY nodes in an embedded engine: Slack and webhook notifications reach the loopback Target
server, email reaches a real SMTP server (aiosmtpd) on loopback, and failures fail the node clearly."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.auth_helpers import engine_client
from tests.conftest import Target
from tests.service.test_embedded_runs import chain, create, node_runs, run_to_end

WAIT = 10.0
REFUSED = "nobody@example.com"


@dataclass
class Mailbox:
    """An SMTP handler that accepts every recipient but REFUSED and keeps each message."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    port: int = 0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address == REFUSED:
            return "550 5.1.1 <nobody@example.com>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = cast(bytes, envelope.original_content or envelope.content)
        message = cast(EmailMessage, email.message_from_bytes(raw, policy=email.policy.default))
        async with self.arrived:
            self.messages.append((list(envelope.rcpt_tos), message))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    async def next(self) -> tuple[list[str], EmailMessage]:
        async def one() -> tuple[list[str], EmailMessage]:
            async with self.arrived:
                await self.arrived.wait_for(lambda: bool(self.messages))
                return self.messages[0]
        return await asyncio.wait_for(one(), WAIT)


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    box = Mailbox()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(box, hostname="mail.stepline.test"), "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    yield box
    server.close()
    await server.wait_closed()


@contextlib.asynccontextmanager
async def running_engine(tmp_path: Path, **settings: Any) -> AsyncIterator[Any]:
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    eng = Engine(EmbeddedSettings(data_dir=tmp_path / "data", stale_seconds=1.0, sweep_interval_seconds=0.2,
                                  lease_seconds=5.0, partitions=4, **settings))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


@pytest.fixture
async def engine(tmp_path: Path, mailbox: Mailbox) -> AsyncIterator[Any]:
    async with running_engine(tmp_path, smtp_host="127.0.0.1", smtp_port=mailbox.port,
                              smtp_from="stepline@example.com", smtp_timeout_seconds=WAIT) as eng:
        yield eng


def notify(identifier: str = "notify", retry: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"identifier": identifier, "config": {"type": "NOTIFY", **config}}
    if retry is not None:
        node["retry"] = retry
    return node


def with_inputs(definition: dict[str, Any]) -> dict[str, Any]:
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"service": {"type": "string"}}}
    return definition


async def test_slack_posts_the_text_to_the_incoming_webhook(api: httpx.AsyncClient, target: Target) -> None:
    node = notify(channel="slack", url=f"{target.base_url}/services/T1/B2/secret",
                  text="Deployed {{ .inputs.service }} ({{ .run.id }})")
    await create(api, with_inputs(chain("notify-slack", node)))
    run = await run_to_end(api, "notify-slack", {"service": "web"})
    assert run["result"] == "SUCCESS", run
    received = (await target.wait_for("/services/T1/B2/secret"))[0]
    assert received["method"] == "POST"
    assert received["body"] == {"text": f"Deployed web ({run['identifier']})"}
    assert run["variables"]["outputs"]["notify"] == {"channel": "slack", "delivered": True, "status": 200}


async def test_webhook_posts_text_subject_run_and_node(api: httpx.AsyncClient, target: Target) -> None:
    node = notify(channel="webhook", url=f"{target.base_url}/hooks/deploys", subject="Deploy {{ .inputs.service }}",
                  text="Done")
    await create(api, with_inputs(chain("notify-webhook", node)))
    run = await run_to_end(api, "notify-webhook", {"service": "api"})
    assert run["result"] == "SUCCESS", run
    received = (await target.wait_for("/hooks/deploys"))[0]
    assert received["body"] == {"text": "Done", "subject": "Deploy api",
                                "run": {"id": run["identifier"], "workflow": "notify-webhook"}, "node": "notify"}
    assert received["headers"]["x-stepline-run-id"] == run["identifier"]
    assert run["variables"]["outputs"]["notify"]["delivered"] is True


async def test_a_client_error_fails_the_node_without_retries(api: httpx.AsyncClient, target: Target) -> None:
    node = notify(channel="slack", url=f"{target.base_url}/status/404", text="hi",
                  retry={"maxAttempts": 3, "initialIntervalSeconds": 0.01})
    await create(api, chain("notify-404", node))
    run = await run_to_end(api, "notify-404")
    assert run["result"] == "FAILED"
    attempts = node_runs(run, "notify")
    assert len(attempts) == 1
    error = attempts[0]["error"]
    assert "slack notification" in error and "answered HTTP 404" in error
    assert "/status/404" not in error, "a Slack webhook URL's path is its credential"
    assert attempts[0]["output"] == {"channel": "slack", "delivered": False, "status": 404}


async def test_a_server_error_is_retried(api: httpx.AsyncClient, target: Target) -> None:
    node = notify(channel="webhook", url=f"{target.base_url}/flaky/1/hook", text="hi",
                  retry={"maxAttempts": 2, "initialIntervalSeconds": 0.01})
    await create(api, chain("notify-503", node))
    run = await run_to_end(api, "notify-503")
    assert run["result"] == "SUCCESS"
    attempts = node_runs(run, "notify")
    assert [(a["attempt"], a["result"]) for a in attempts] == [(1, "FAILED"), (2, "SUCCESS")]
    assert "answered HTTP 503" in attempts[0]["error"] and "/flaky/1/hook" in attempts[0]["error"]


async def test_email_reaches_the_smtp_server(api: httpx.AsyncClient, mailbox: Mailbox) -> None:
    node = notify(channel="email", to=["ops@example.com", "{{ .inputs.service }}-owner@example.com"],
                  subject="Deployed {{ .inputs.service }}", text="Version 1.2.3 is live.\nRun {{ .run.id }}")
    await create(api, with_inputs(chain("notify-email", node)))
    run = await run_to_end(api, "notify-email", {"service": "web"})
    assert run["result"] == "SUCCESS", run
    recipients, message = await mailbox.next()
    assert recipients == ["ops@example.com", "web-owner@example.com"]
    assert message["To"] == "ops@example.com, web-owner@example.com"
    assert message["From"] == "stepline@example.com"
    assert message["Subject"] == "Deployed web"
    body = message.get_body()
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == f"Version 1.2.3 is live.\nRun {run['identifier']}\n"
    assert run["variables"]["outputs"]["notify"] == {
        "channel": "email", "delivered": True, "recipients": ["ops@example.com", "web-owner@example.com"]}


async def test_a_refused_recipient_fails_with_the_server_message(api: httpx.AsyncClient, mailbox: Mailbox) -> None:
    await create(api, chain("notify-refused", notify(channel="email", to=REFUSED, text="hi")))
    run = await run_to_end(api, "notify-refused")
    assert run["result"] == "FAILED"
    error = node_runs(run, "notify")[0]["error"]
    assert "550" in error and "mailbox unavailable" in error and REFUSED in error
    assert mailbox.messages == []


async def test_email_without_an_smtp_server_fails_clearly(tmp_path: Path) -> None:
    async with running_engine(tmp_path) as eng:
        async with engine_client(eng) as api:
            node = notify(channel="email", to="ops@example.com", text="hi",
                          retry={"maxAttempts": 3, "initialIntervalSeconds": 0.01})
            await create(api, chain("notify-no-smtp", node))
            run = await run_to_end(api, "notify-no-smtp")
    assert run["result"] == "FAILED"
    attempts = node_runs(run, "notify")
    assert len(attempts) == 1
    assert "STEPLINE_SMTP_HOST" in attempts[0]["error"]


async def test_notify_configs_are_checked_at_validation(api: httpx.AsyncClient) -> None:
    cases = [(notify(channel="slack", text="hi"), "/nodes/1/config/url"),
             (notify(channel="email", text="hi"), "/nodes/1/config/to"),
             (notify(channel="sms", url="http://x", text="hi"), "/nodes/1/config/channel"),
             (notify(channel="webhook", url="http://x"), "/nodes/1/config/text")]
    for node, pointer in cases:
        response = await api.post("/v1/workflows", json=chain("notify-bad", node))
        assert response.status_code == 422, response.text
        assert pointer in [d["pointer"] for d in response.json()["details"]], response.text
