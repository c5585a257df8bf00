"""The GitHub action builds API paths from rendered values: they can never leave `/repos/{owner}/{name}`."""

from __future__ import annotations

import httpx
import pytest

from libs.core.errors import ActionError
from services.executor.actions.github import Dispatch


@pytest.mark.parametrize("repo", ["../..", "owner/..", "./name", "../x", "a/b/c", "a", "a/b?x=1", "a/b#c"])
def test_a_repo_that_is_not_owner_slash_name_is_refused(repo: str) -> None:
    with pytest.raises(ActionError, match="repo must be owner/name") as refused:
        Dispatch.of({"repo": repo, "workflowId": "ci.yml"})
    assert not refused.value.retryable


@pytest.mark.parametrize("workflow_id", ["..", ".", ""])
def test_a_workflow_id_that_would_climb_is_refused(workflow_id: str) -> None:
    with pytest.raises(ActionError, match="workflowId"):
        Dispatch.of({"repo": "acme/app", "workflowId": workflow_id})


def test_paths_stay_under_the_repository() -> None:
    dispatch = Dispatch.of({"repo": "acme/my.app", "workflowId": "../../x/ci.yml"})
    url = httpx.URL("https://api.github.com/api/v3" + dispatch.workflow_path + "/dispatches")
    assert url.raw_path == b"/api/v3/repos/acme/my.app/actions/workflows/..%2F..%2Fx%2Fci.yml/dispatches"
