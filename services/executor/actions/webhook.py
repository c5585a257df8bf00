"""WEBHOOK: one HTTP request with httpx. Output `{response: {status, data}}`; a body longer than
`max_response_bytes` is read only that far and shown as text with `truncated: true`.

`synchronized: false` sends the request and leaves the node WAITING for a PATCH of its node run;
the receiver learns which node run from the `X-Stepline-*` headers and from Port's body field
`context: {workflowRunId, nodeRunId}` (added to an object body), and may complete it without an API
key by sending back the `X-Stepline-Callback-Token` it got.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from libs.access.callback_tokens import HEADER as CALLBACK_HEADER
from libs.access.callback_tokens import CallbackTokens
from libs.core import engine_logs
from libs.core.errors import ActionError
from services.executor.actions import bounded_http
from services.executor.actions.base import ActionInput, ActionResult

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookAction:
    def __init__(self, client: httpx.AsyncClient, *, max_response_bytes: int,
                 callback_tokens: CallbackTokens | None = None) -> None:
        self.client = client
        self.max_response_bytes = max_response_bytes
        self.callback_tokens = callback_tokens

    async def execute(self, data: ActionInput) -> ActionResult:
        cfg = data.config
        url = cfg.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ActionError(f"config.url must be an http(s) URL after rendering, got {_short(url)}")
        headers = {str(k): str(v) for k, v in (cfg.get("headers") or {}).items()}
        headers.setdefault("Idempotency-Key", data.node_run_key)
        headers["X-Stepline-Run-Id"] = data.run_id
        headers["X-Stepline-Node-Run-Id"] = data.node_run_id
        if cfg.get("synchronized") is False and self.callback_tokens is not None:
            headers[CALLBACK_HEADER] = self.callback_tokens.token(data.node_run_key)
        method = str(cfg.get("method") or "POST").upper()
        body = with_context(cfg.get("body"), data) if cfg.get("synchronized") is False else cfg.get("body")
        try:
            response = await bounded_http.request(
                self.client, method, url, limit=self.max_response_bytes, headers=headers, timeout=data.timeout,
                json=body if body is not None and method != "GET" else None)
        except httpx.TimeoutException:
            raise ActionError(f"{method} {_origin(url)} timed out", retryable=True) from None
        except httpx.HTTPError as exc:
            raise ActionError(f"{method} {_origin(url)} failed: {type(exc).__name__}", retryable=True) from None
        output = {"response": _response(response)}
        if response.status >= 400:
            raise ActionError(f"{method} {_origin(url)} answered HTTP {response.status}",
                              retryable=response.status in RETRYABLE_STATUS, output=output)
        return ActionResult(output=output, waiting=cfg.get("synchronized") is False)


def with_context(body: Any, data: ActionInput) -> Any:
    """An asynchronous WEBHOOK's body with Port's `context: {workflowRunId, nodeRunId}` added, where
    Port's receivers read it: no body becomes `{context}`, an object gains the field unless it sets
    its own `context`; any other body is sent as configured (the ids are in the headers too)."""
    context = {"workflowRunId": data.run_id, "nodeRunId": data.node_run_id}
    if body is None:
        return {"context": context}
    if isinstance(body, dict) and "context" not in body:
        return {**body, "context": context}
    return body


def _response(received: bounded_http.Received) -> dict[str, Any]:
    """`{status, data}`: the body as JSON, or as text when it is not JSON or was cut at the limit
    (then with `truncated: true`)."""
    raw = received.body
    if received.truncated:
        return {"status": received.status, "data": raw.decode("utf-8", errors="replace"), "truncated": True}
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw.decode("utf-8", errors="replace")
    return {"status": received.status, "data": data}


def _origin(url: str) -> str:
    """Scheme, host and path only: query strings may carry credentials (as in the engine's logs)."""
    return engine_logs.url_without_secrets(url)


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
