"""A thin client of the Stepline HTTP API (docs/api.md) for the CLI.

Every call returns the decoded success body. An `{ok: false, error, message, details}` answer becomes
an `ApiError` carrying the server's message and JSON pointers; a server that cannot be reached becomes
a `CliError` telling the user to start one with `stepline up`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from stepline.cli.errors import EXIT_FAILED, EXIT_USAGE, CliError

DEFAULT_API = "http://127.0.0.1:8080"
API_ENV = "STEPLINE_API"
API_KEY_ENV = "STEPLINE_API_KEY"
LOCAL_KEY_FILE = Path(".stepline") / "admin.key"
"""Where `stepline up` (and `make run`) leaves the bootstrap owner key, relative to the working directory."""
REQUEST_TIMEOUT = 30.0
"""Seconds to wait for an answer beyond any server-side `wait` the request asks for."""

Params = Mapping[str, str | int | Sequence[str]]


def default_api() -> str:
    return os.environ.get(API_ENV) or DEFAULT_API


def resolve_api_key(given: str | None) -> str | None:
    """`--api-key`, else `$STEPLINE_API_KEY`, else `./.stepline/admin.key`, else None."""
    if given:
        return given.strip()
    if os.environ.get(API_KEY_ENV):
        return os.environ[API_KEY_ENV].strip()
    try:
        return LOCAL_KEY_FILE.read_text().strip() or None
    except OSError:
        return None


class ApiError(CliError):
    """The API refused a request: HTTP status, error code, message and `details` pointers."""

    def __init__(self, status: int, code: str, message: str, details: Sequence[Mapping[str, Any]]) -> None:
        self.status = status
        self.code = code
        self.details = [(str(d.get("pointer", "")), str(d.get("message", ""))) for d in details]
        lines = [f"  {pointer or '/'}: {text}" for pointer, text in self.details]
        super().__init__(message, lines=lines, exit_code=EXIT_USAGE if status < 500 else EXIT_FAILED)


def segment(value: str) -> str:
    """One path segment, percent-encoded (identifiers may hold `@`, `:` and any letter)."""
    return quote(value, safe="")


class ApiClient:
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = REQUEST_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        headers = {"User-Agent": "stepline-cli"} | ({"Authorization": f"Bearer {api_key}"} if api_key else {})
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=not _is_loopback(base_url),
                                  headers=headers)

    def delete(self, path: str) -> dict[str, Any]:
        return self.request("DELETE", path)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, *, params: Params | None = None, wait: float = 0.0) -> dict[str, Any]:
        return self.request("GET", path, params=params, wait=wait)

    def post(self, path: str, body: Any) -> dict[str, Any]:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: Any) -> dict[str, Any]:
        return self.request("PUT", path, body=body)

    def request(self, method: str, path: str, *, params: Params | None = None, body: Any = None,
                wait: float = 0.0) -> dict[str, Any]:
        """Send one request; `wait` is how long the server may hold it (added to the timeout)."""
        try:
            response = self._http.request(method, path, params=params, json=body, timeout=self.timeout + wait)
        except httpx.ConnectError as exc:
            raise self._unreachable(exc) from None
        except httpx.TimeoutException:
            raise CliError(f"the Stepline API at {self.base_url} did not answer {method} {path} in time") from None
        except httpx.HTTPError as exc:
            raise CliError(f"request to the Stepline API at {self.base_url} failed: {_reason(exc)}") from None
        return self._decode(response)

    def _unreachable(self, exc: httpx.HTTPError) -> CliError:
        return CliError(f"cannot connect to the Stepline API at {self.base_url} ({_reason(exc)}); "
                        "start it with `stepline up` in another terminal, or point --api "
                        f"(or ${API_ENV}) at a running server")

    def _decode(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise CliError(f"{self.base_url} answered HTTP {response.status_code} with a body that is not JSON; "
                           "is --api pointing at a Stepline server?",
                           exit_code=EXIT_USAGE if response.status_code < 500 else EXIT_FAILED) from None
        if not isinstance(body, dict):
            raise CliError(f"{self.base_url} answered HTTP {response.status_code} with unexpected JSON")
        if response.status_code == 401:
            raise _unauthenticated(body)
        if response.is_error or body.get("ok") is False:
            raise _api_error(response.status_code, body)
        return body


def _api_error(status: int, body: Mapping[str, Any]) -> ApiError:
    message = str(body.get("message") or f"the API answered HTTP {status}")
    details = body.get("details")
    listed = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    return ApiError(status, str(body.get("error") or "error"), message, listed)


def _unauthenticated(body: Mapping[str, Any]) -> ApiError:
    error = _api_error(401, body)
    error.lines.append(f"  pass --api-key, set ${API_KEY_ENV}, or run from the directory whose "
                       f"{LOCAL_KEY_FILE} `stepline up` wrote")
    return error


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[-1] if text else type(exc).__name__


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in {"localhost", "::1"} or host.startswith("127.")
