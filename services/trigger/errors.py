"""Every error the API answers, in one place: `{ok: false, error, message, details}`.

| raised                                   | status | `error`                                  |
|------------------------------------------|--------|------------------------------------------|
| DefinitionError / InputError             | 422    | invalid_definition / invalid_inputs      |
| RequestInvalidError, RequestValidationError | 422 | validation_error                         |
| TemplateError                            | 422    | template_error                           |
| body is not JSON                         | 400    | bad_request                              |
| body not sent as JSON (browser_guard.py) | 415    | unsupported_media_type                   |
| Host not allowed (browser_guard.py)      | 421    | misdirected_request                      |
| NotFoundError / unknown route            | 404    | not_found                                |
| method not allowed on a route            | 405    | method_not_allowed                       |
| ConflictError                            | 409    | conflict                                 |
| ForbiddenError                           | 403    | forbidden                                |
| UnauthorizedError, no/bad API key (authn.py) | 401 | unauthorized                             |
| TooManyRequestsError (too many long polls) | 429 | too_many_requests                        |
| body over the limit (body_limit.py)      | 413    | payload_too_large                        |
| retryable store / bus failure            | 503    | store_unavailable / bus_error / ...      |
| anything else                            | 500    | internal_error (generic message, logged) |
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.core.errors import (
    ConflictError,
    DefinitionError,
    ForbiddenError,
    InputError,
    Issue,
    NotFoundError,
    SteplineError,
    TemplateError,
    UnauthorizedError,
)
from libs.core.pointer import from_path
from services.trigger.responses import ApiJSONResponse

logger = logging.getLogger("stepline.trigger.api")

INTERNAL_MESSAGE = "an unexpected error occurred; it has been logged"
UNAVAILABLE_MESSAGE = "a backing service is temporarily unavailable; retry the request"


class RequestInvalidError(SteplineError):
    """A request the models accepted but the API cannot: carries `issues` with JSON pointers."""

    code = "validation_error"

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(summarize("invalid request", issues))
        self.issues = issues

    def details(self) -> list[dict[str, str]]:
        return [i.as_dict() for i in self.issues]


class TooManyRequestsError(SteplineError):
    """A bounded resource of this replica is full (e.g. long polls); retry later."""

    code = "too_many_requests"


def invalid(pointer: str, message: str) -> RequestInvalidError:
    return RequestInvalidError([Issue(pointer, message)])


def summarize(message: str, issues: Sequence[Issue]) -> str:
    """`message` plus the first issue (with its pointer), so the sentence names the offending field."""
    if not issues:
        return message
    first = issues[0]
    text = f"{message}: {_label(first.pointer)}: {first.message}"
    return text + (f" (and {len(issues) - 1} more)" if len(issues) > 1 else "")


def _label(pointer: str) -> str:
    for where, prefix in (("query parameter", "/query/"), ("path parameter", "/path/"), ("header", "/header/")):
        if pointer.startswith(prefix):
            return f"{where} {pointer.removeprefix(prefix)}"
    return f"field {pointer}" if pointer else "body"


def error_response(status: int, code: str, message: str, details: Sequence[dict[str, str]] = (),
                   headers: dict[str, str] | None = None) -> ApiJSONResponse:
    body = {"ok": False, "error": code, "message": message, "details": list(details)}
    return ApiJSONResponse(body, status_code=status, headers=headers)


# ---- SteplineError ------------------------------------------------------------------------------

_CLIENT_STATUS: tuple[tuple[type[SteplineError], int], ...] = (
    (DefinitionError, 422), (InputError, 422), (RequestInvalidError, 422), (TemplateError, 422),
    (NotFoundError, 404), (ConflictError, 409), (ForbiddenError, 403), (UnauthorizedError, 401),
    (TooManyRequestsError, 429),
)


def _issues_of(exc: SteplineError) -> list[Issue]:
    issues = getattr(exc, "issues", None)
    return list(issues) if isinstance(issues, list) else []


async def stepline_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SteplineError)
    for kind, status in _CLIENT_STATUS:
        if isinstance(exc, kind):
            issues = _issues_of(exc)
            named = any(i.message in exc.message or (i.pointer and i.pointer in exc.message) for i in issues)
            message = exc.message if named else summarize(exc.message, issues)
            return error_response(status, exc.code, message, [i.as_dict() for i in issues])
    logger.error("%s %s failed: %s", request.method, request.url.path, exc.code, exc_info=exc)
    if exc.retryable:
        return error_response(503, exc.code, UNAVAILABLE_MESSAGE, headers={"Retry-After": "1"})
    return error_response(500, "internal_error", INTERNAL_MESSAGE)


# ---- request validation -------------------------------------------------------------------------

def pointer_from_loc(loc: Sequence[Any]) -> str:
    """FastAPI `loc` → RFC 6901 pointer: body fields from the root (`/inputs`), others `/query/limit`."""
    parts = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    return from_path(p if isinstance(p, int) else str(p) for p in parts)


_JSON_WORDS = (("Value error, ", ""), ("a valid dictionary", "an object"), ("a valid list", "an array"))


def _detail_message(error: dict[str, Any]) -> str:
    """pydantic's message, in JSON words."""
    if error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body",):
        return "a JSON request body is required"
    message = str(error.get("msg", "invalid value"))
    for python, json_word in _JSON_WORDS:
        message = message.replace(python, json_word)
    return message


def _is_json_error(error: dict[str, Any]) -> bool:
    return error.get("type") == "json_invalid"


def _is_raw_body(error: dict[str, Any]) -> bool:
    return tuple(error.get("loc", ()))[:1] == ("body",) and isinstance(error.get("input"), (bytes, bytearray))


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [dict(e) for e in exc.errors()]
    if any(_is_json_error(e) for e in errors):
        reason = str((errors[0].get("ctx") or {}).get("error", "malformed JSON"))
        message = f"body is not valid JSON: {reason}"
        return error_response(400, "bad_request", message, [{"pointer": "", "message": message}])
    if any(_is_raw_body(e) for e in errors):
        message = "body must be JSON sent with Content-Type: application/json"
        return error_response(415, "unsupported_media_type", message, [{"pointer": "", "message": message}])
    issues = [Issue(pointer_from_loc(e.get("loc", ())), _detail_message(e)) for e in errors]
    return error_response(422, "validation_error", summarize("invalid request", issues),
                          [i.as_dict() for i in issues])


# ---- HTTP errors raised by routing (unknown path, wrong method) ---------------------------------

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type"}


def _http_message(request: Request, status: int, detail: Any) -> str:
    if status == 404:
        return f"no resource at path {request.url.path}"
    if status == 405:
        return f"method {request.method} is not allowed on path {request.url.path}"
    return str(detail)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "bad_request")
    message = _http_message(request, exc.status_code, exc.detail)
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SteplineError, stepline_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_middleware(CatchAllMiddleware)


# ---- anything else ------------------------------------------------------------------------------

class CatchAllMiddleware:
    """Turns an unexpected exception into a logged 500 `internal_error` that reveals nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await error_response(500, "internal_error", INTERNAL_MESSAGE)(scope, receive, send)
