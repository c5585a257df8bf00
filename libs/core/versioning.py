"""Workflows, their immutable numbered versions and the mutable tags that point at versions."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from libs.core.errors import NotFoundError

LIVE_TAG = "$LIVE"
TAG_PATTERN = re.compile(r"^\$[A-Z_]+$")


def is_valid_tag(tag: str) -> bool:
    return bool(TAG_PATTERN.fullmatch(tag)) and len(tag) <= 60


class WorkflowRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    identifier: str
    title: str | None = None
    description: str | None = None
    owner: str | None = None
    tags: dict[str, int] = Field(default_factory=dict)
    """Tag name → version number; `$LIVE` always exists once a version does."""
    latest_version: int = 0
    deleted: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    created_by: str | None = None
    updated_by: str | None = None

    @property
    def live_version(self) -> int:
        return self.tags.get(LIVE_TAG, self.latest_version)


class VersionRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    workflow: str
    version: int
    definition: dict[str, Any]
    """The normalised definition JSON exactly as validated; parse with `validation.parse_workflow`."""
    created_at: float = 0.0
    created_by: str | None = None


def resolve_version(record: WorkflowRecord, version: int | None, tag: str | None) -> int:
    """The version a run starts on: the one named, the one `tag` points at, or `$LIVE`.
    NotFoundError names what is missing."""
    if version is not None:
        if not 1 <= version <= record.latest_version:
            raise NotFoundError(f"workflow {record.identifier!r} has no version {version}")
        return version
    if tag is None:
        return record.live_version
    if not is_valid_tag(tag) or tag not in record.tags:
        raise NotFoundError(f"workflow {record.identifier!r} has no tag {tag!r}")
    return record.tags[tag]
