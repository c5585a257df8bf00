"""A scripted model server on loopback: OpenAI-compatible Chat Completions (`POST /v1/chat/completions`)
and Anthropic Messages (`POST /v1/messages`) in one FastAPI app, written from the public formats (it
shares no code with the engine's wire modules). Each request takes the next scripted step; with none
left it answers `default`. Every request is recorded with its headers and body.

A step is an `Answer` (text and tool calls, rendered in the format of the path asked) or a `Failure`
(a status, headers and body); `echo=True` answers with the last user message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.conftest import serving


@dataclass(frozen=True)
class Answer:
    content: str | None = "ok"
    tool_calls: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    """(id, name, arguments) per call."""
    input_tokens: int = 10
    output_tokens: int = 5
    echo: bool = False


@dataclass(frozen=True)
class Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"error": {"message": "scripted failure"}})


Step = Answer | Failure


@dataclass
class ScriptedModel:
    base_url: str = ""
    steps: list[Step] = field(default_factory=list)
    default: Step = field(default_factory=Answer)
    requests: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def script(self, *steps: Step) -> None:
        self.steps.extend(steps)

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests]

    async def answer(self, path: str, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        async with self.arrived:
            self.requests.append({"path": path, "headers": dict(request.headers), "body": body})
            self.arrived.notify_all()
        step = self.steps.pop(0) if self.steps else self.default
        if isinstance(step, Failure):
            return JSONResponse(step.body, status_code=step.status, headers=step.headers)
        if step.echo:
            step = Answer(content=_last_user_text(body), input_tokens=step.input_tokens, output_tokens=step.output_tokens)
        rendered = _anthropic(step, body) if path == "/v1/messages" else _openai(step, body)
        return JSONResponse(rendered)


def _last_user_text(body: dict[str, Any]) -> str:
    content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))


def _openai(step: Answer, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.content}
    if step.tool_calls:
        message["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                                 for i, n, a in step.tool_calls]
    return {"id": "chatcmpl-scripted", "object": "chat.completion", "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if step.tool_calls else "stop"}],
            "usage": {"prompt_tokens": step.input_tokens, "completion_tokens": step.output_tokens,
                      "total_tokens": step.input_tokens + step.output_tokens}}


def _anthropic(step: Answer, body: dict[str, Any]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": step.content}] if step.content is not None else []
    blocks += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in step.tool_calls]
    return {"id": "msg_scripted", "type": "message", "role": "assistant", "model": body.get("model", "scripted"),
            "content": blocks, "stop_reason": "tool_use" if step.tool_calls else "end_turn",
            "usage": {"input_tokens": step.input_tokens, "output_tokens": step.output_tokens}}


def model_app(model: ScriptedModel) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        return await model.answer("/v1/chat/completions", request)

    @app.post("/v1/messages")
    async def messages(request: Request) -> JSONResponse:
        return await model.answer("/v1/messages", request)

    return app


@asynccontextmanager
async def scripted_model() -> AsyncIterator[ScriptedModel]:
    model = ScriptedModel()
    async with serving(model_app(model)) as base_url:
        model.base_url = base_url
        yield model
