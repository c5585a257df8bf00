"""NOTIFY: tell people something, over a Slack incoming webhook, any webhook, or email.

- `slack`: POST `{"text"}` to `url`. Output `{channel, delivered, status}`.
- `webhook`: POST `{text, subject?, run: {id, workflow}, node}` to `url`. Output as for slack.
- `email`: SMTP (services/executor/actions/smtp_mail.py) to `to`. Output `{channel, delivered, recipients}`.

A non-2xx answer fails the node: retryable for 5xx, 408, 425, 429 and connection errors, not for other
answers. A Slack webhook URL is a credential, so errors name only its host.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from libs.core.errors import ActionError
from services.executor.actions import bounded_http
from services.executor.actions.base import ActionInput, ActionResult
from services.executor.actions.smtp_mail import Mail, SmtpMailer, recipients
from services.executor.actions.webhook import RETRYABLE_STATUS

_BODY_IN_ERROR = 200
_BODY_READ = 4096
"""How much of an answer is read: only its start appears in an error."""


class NotifyAction:
    def __init__(self, client: httpx.AsyncClient, mailer: SmtpMailer) -> None:
        self.client = client
        self.mailer = mailer

    async def execute(self, data: ActionInput) -> ActionResult:
        cfg = data.config
        channel = cfg.get("channel")
        text = _text(cfg.get("text"))
        if channel == "email":
            mail = Mail(recipients=recipients(cfg.get("to")), subject=_text(cfg.get("subject") or "Stepline notification"),
                        text=text, message_id=data.node_run_id)
            return ActionResult(output=await self.mailer.send(mail))
        if channel == "slack":
            return ActionResult(output=await self._post(data, "slack", {"text": text}))
        if channel == "webhook":
            body: dict[str, Any] = {"text": text}
            if cfg.get("subject") is not None:
                body["subject"] = _text(cfg["subject"])
            body["run"] = {"id": data.run_id, "workflow": data.context.get("run", {}).get("workflow")}
            body["node"] = data.node.identifier
            return ActionResult(output=await self._post(data, "webhook", body))
        raise ActionError(f"config.channel must be slack, webhook or email, got {channel!r}")

    async def _post(self, data: ActionInput, channel: str, body: dict[str, Any]) -> dict[str, Any]:
        url = data.config.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ActionError("config.url must be an http(s) URL after rendering")
        where = _where(url, with_path=channel != "slack")
        headers = {"Idempotency-Key": data.node_run_key, "X-Stepline-Run-Id": data.run_id,
                   "X-Stepline-Node-Run-Id": data.node_run_id}
        try:
            response = await bounded_http.request(self.client, "POST", url, limit=_BODY_READ, json=body,
                                                  headers=headers, timeout=data.timeout)
        except httpx.TimeoutException:
            raise ActionError(f"{channel} notification to {where} timed out", retryable=True) from None
        except httpx.HTTPError as exc:
            raise ActionError(f"{channel} notification to {where} failed: {type(exc).__name__}", retryable=True) from None
        if not 200 <= response.status < 300:
            said = " ".join(response.body.decode("utf-8", errors="replace")[:_BODY_IN_ERROR].split())
            raise ActionError(f"{channel} notification to {where} answered HTTP {response.status}"
                              + (f": {said}" if said else ""),
                              retryable=response.status in RETRYABLE_STATUS or response.status >= 500,
                              output={"channel": channel, "delivered": False, "status": response.status})
        return {"channel": channel, "delivered": True, "status": response.status}


def _text(value: Any) -> str:
    """A rendered template may be any JSON value; a notification sends text."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _where(url: str, *, with_path: bool) -> str:
    """Scheme and host, and the path when it is not a credential; never the query string."""
    try:
        u = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid url>"
    origin = f"{u.scheme}://{u.host}{':' + str(u.port) if u.port else ''}"
    return origin + u.path if with_path else origin
