"""An integration worker written from Port's documented worker API (api/port-workflow-api-fragments.md,
the OpenAPI subset): claim pending node runs of one installation, acknowledge each, perform it, and
complete it with the node-run PATCH. Run as a process:

    python integration_worker.py BASE_URL API_KEY INSTALLATION_ID COUNT

It exits 0 once it has completed COUNT node runs (1 if 30 s pass first). Performing `sync_skill`
answers `{skillId, synced: true}` from the invocation's `portSkillId`; any other invocation type fails
the node run with a log line, as a worker that does not know it would.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx


def perform(node_run: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body completing one claimed node run."""
    invocation = node_run["output"]
    properties = invocation.get("integrationActionExecutionProperties") or {}
    if invocation.get("integrationInvocationType") == "sync_skill":
        return {"status": "COMPLETED", "result": "SUCCESS",
                "output": {"skillId": f"claude-{properties.get('portSkillId')}", "synced": True},
                "logs": [{"logLevel": "INFO", "log": "skill synced"}]}
    return {"status": "COMPLETED", "result": "FAILED",
            "logs": [{"logLevel": "ERROR", "log": f"unknown invocation {invocation.get('integrationInvocationType')}"}]}


def work(client: httpx.Client, installation: str, count: int) -> int:
    done = 0
    deadline = time.monotonic() + 30
    while done < count and time.monotonic() < deadline:
        claimed = client.post("/v1/org/my-org/workflows/runs/claim-pending",
                              json={"installationId": installation, "limit": 10, "visibilityTimeoutMs": 60_000})
        claimed.raise_for_status()
        for node_run in claimed.json()["nodeRuns"]:
            client.patch("/v1/org/my-org/workflows/runs/ack",
                         json={"nodeRunIdentifier": node_run["identifier"]}).raise_for_status()
            client.patch(f"/v1/workflows/nodes/runs/{node_run['identifier']}", json=perform(node_run)).raise_for_status()
            done += 1
        if not claimed.json()["nodeRuns"]:
            time.sleep(0.05)  # a poller, as Port's workers are
    return 0 if done >= count else 1


def main(argv: list[str]) -> int:
    base_url, key, installation, count = argv[1], argv[2], argv[3], int(argv[4])
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
        return work(client, installation, count)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
