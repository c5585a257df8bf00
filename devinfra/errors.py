"""The errors of `devinfra`: a server could not be fetched, built, started or stopped."""

from __future__ import annotations

from libs.core.errors import SteplineError


class InfraError(SteplineError):
    """A development server could not be fetched, built, started or stopped."""

    code = "infra_error"


class MissingToolError(InfraError):
    """A tool needed to fetch, build or run the development servers is not installed."""

    code = "missing_tool"

    def __init__(self, tool: str, needed_for: str, how_to_install: str) -> None:
        super().__init__(f"`{tool}` is not installed or not on PATH; it is needed {needed_for}. "
                         f"Install it: {how_to_install}")
        self.tool = tool
