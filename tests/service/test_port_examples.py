"""Port's 32 published workflows (`shared/reference/port-examples/` next to or above the checkout, or
`STEPLINE_PORT_EXAMPLES`; read from there, see port_examples.find_examples): each validates
unchanged, or fails for the reason `port_examples.VALIDATION` names; each that validates and has an
identifier is applied unchanged; each edited copy runs in an embedded engine against a loopback echo
server (or from its catalog event) to the result `port_examples.CASES` says, outputs asserted; the node
runs it waits for are completed as their receivers would (an integration's through the worker API).
docs/port-compatibility.md's example table is checked against the same data."""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.core.validation import validate_definition
from libs.secrets.vault import open_vault
from tests.auth_helpers import engine_client
from tests.conftest import serving
from tests.service.port_examples import (
    CASES,
    CONFIGURED,
    EXAMPLES,
    SECRETS,
    SKIP_REASON,
    VALIDATION,
    Case,
    Echo,
    edited_names,
    example_names,
    load,
    load_edited,
)
from tests.service.test_catalog import runs_of, settled

# Absent examples skip (reference data, not infrastructure); a configured path that is missing fails.
pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir() and not CONFIGURED, reason=SKIP_REASON)

COMPAT = Path(__file__).parents[2] / "docs" / "port-compatibility.md"


def test_all_32_examples_and_26_edited_copies_are_there() -> None:
    assert EXAMPLES.is_dir(), f"STEPLINE_PORT_EXAMPLES={CONFIGURED} is not a directory"
    assert len(example_names()) == 32
    assert sorted(CASES) == edited_names()
    assert set(VALIDATION) <= set(example_names())


def test_only_named_examples_fail_validation_and_ai_ones_validate() -> None:
    valid = [n for n in example_names() if n not in VALIDATION]
    assert len(valid) == 22, valid
    assert {"23-S-skills-event-ai-incident", "30-D-docs-guide-ticket-resolution-coding-agents",
            "31-D-docs-ai-node-analyze-and-notify", "32-D-docs-ai-node-incident-summary"} <= set(valid)


@pytest.mark.parametrize("name", sorted(set(example_names()) if EXAMPLES.is_dir() else []))
def test_example_validates_unchanged_or_for_its_named_reason(name: str) -> None:
    found = validate_definition(load(name))
    refusal = VALIDATION.get(name)
    if refusal is None:
        assert found == []
        return
    assert {i.pointer for i in found} == refusal.pointers, found
    assert all(refusal.message in i.message for i in found if i.pointer in refusal.pointers), found


def test_go_template_helpers_are_refused_with_the_jq_to_write() -> None:
    [issue, *_] = [i for i in validate_definition(load("12-A-github-deploy-with-github"))]
    assert "now | todate" in issue.message and issue.pointer.endswith("/lastDeployedAt")
    messages = " ".join(i.message for i in validate_definition(load("10-A-upsert-create-env-workflow")))
    for hint in ("ascii_downcase", 'gsub(" "; "-")', "add_duration", "string interpolation"):
        assert hint in messages


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    server = Echo()
    async with serving(server.app()) as base_url:
        server.base_url = base_url
        yield server


@pytest.fixture
async def port_engine(tmp_path: Path, echo: Echo) -> AsyncIterator[Any]:
    """An embedded engine set up as EDITS.md says: its secrets, GitHub's API on the echo server."""
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    key = base64.b64encode(os.urandom(32)).decode()
    eng = Engine(EmbeddedSettings(data_dir=tmp_path / "data", stale_seconds=1.0, sweep_interval_seconds=0.2,
                                  lease_seconds=5.0, partitions=4, secrets_key=key,
                                  github_api_url=f"{echo.base_url}/gh"))
    await eng.start()
    vault = open_vault(eng.store, key)
    assert vault is not None
    for name, value in {**SECRETS, "slack-webhook-url": f"{echo.base_url}/slack"}.items():
        await vault.put(name, value, now=time.time())
    yield eng
    await eng.stop()


@pytest.fixture
async def port_api(port_engine: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with engine_client(port_engine) as client:
        yield client


APPLIED = [n for n in (example_names() if EXAMPLES.is_dir() else []) if n not in VALIDATION]


@pytest.mark.parametrize("name", APPLIED)
async def test_example_is_applied_unchanged(port_api: httpx.AsyncClient, name: str) -> None:
    definition = load(name)
    created = await port_api.post("/v1/workflows", json=definition)
    assert created.status_code == 201, created.text
    shown = (await port_api.get(f"/v1/workflows/{definition['identifier']}")).json()["workflow"]
    assert [n["identifier"] for n in shown["nodes"]] == [n["identifier"] for n in definition["nodes"]]
    for sent, got in zip(definition["nodes"], shown["nodes"], strict=True):
        kept = {k: v for k, v in sent.items() if k in ("links", "verbose", "category", "title", "icon")}
        assert {k: got.get(k) for k in kept} == kept, "Port's display fields are kept"


async def start(api: httpx.AsyncClient, engine: Any, workflow: str, case: Case) -> str:
    if case.event is None:
        started = await api.post(f"/v1/workflows/{workflow}/runs", json={"inputs": case.inputs or {}})
        assert started.status_code == 201, started.text
        return str(started.json()["workflowRun"]["identifier"])
    answer = await api.post("/v1/catalog/events", json=case.event)
    assert answer.status_code == 202, answer.text
    await settled(engine)
    [run] = await runs_of(api, workflow)
    return str(run["identifier"])


async def run_through(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run once completed; meanwhile every asynchronous WEBHOOK (`synchronized: false`) it waits
    for is completed with SUCCESS by the node-run PATCH, as its receiver would."""
    for _ in range(100):
        run: dict[str, Any] = (await api.get(f"/v1/workflows/runs/{run_id}", params={"wait": 0.5})).json()["workflowRun"]
        if run["status"] == "COMPLETED":
            return run
        for node_run in run["nodeRuns"]:
            if node_run["state"] == "WAITING":
                await complete_waiting(api, node_run)
    raise AssertionError(f"run {run_id} did not complete")


async def complete_waiting(api: httpx.AsyncClient, node_run: dict[str, Any]) -> None:
    """PATCH a waiting node run with SUCCESS; an integration's is first claimed and acknowledged
    through the worker API, as its integration worker would."""
    output: dict[str, Any] = {}
    if node_run["nodeConfigType"] == "INTEGRATION_ACTION":
        claim = {"installationId": node_run["output"]["installationId"]}
        claimed = (await api.post("/v1/org/o/workflows/runs/claim-pending", json=claim)).json()["nodeRuns"]
        assert [c["identifier"] for c in claimed] == [node_run["identifier"]]
        acked = await api.patch("/v1/org/o/workflows/runs/ack", json={"nodeRunIdentifier": node_run["identifier"]})
        assert acked.status_code == 200, acked.text
        output = {"worker": "done", "invocation": claimed[0]["output"]}
    done = await api.patch(f"/v1/workflows/nodes/runs/{node_run['identifier']}",
                           json={"status": "COMPLETED", "result": "SUCCESS", "output": output})
    assert done.status_code == 200, done.text


def holds(value: Any, expected: Any) -> bool:
    """`expected`'s fields are in `value` (recursively for objects)."""
    if isinstance(expected, dict):
        return isinstance(value, dict) and all(holds(value.get(k), v) for k, v in expected.items())
    return bool(value == expected)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_edited_copy_runs_to_its_documented_result(port_api: httpx.AsyncClient, port_engine: Any,
                                                         echo: Echo, name: str) -> None:
    case = CASES[name]
    definition = load_edited(name, echo.base_url)
    created = await port_api.post("/v1/workflows", json=definition)
    assert created.status_code == 201, created.text
    run = await run_through(port_api, await start(port_api, port_engine, definition["identifier"], case))
    assert run["result"] == case.result, run
    assert case.error in (run.get("error") or ""), run
    states = {nr["node"]["identifier"]: nr["status"] for nr in run["nodeRuns"]}
    if case.result == "SUCCESS":
        ran = {n["identifier"] for n in definition["nodes"] if not n["config"]["type"].endswith("TRIGGER")}
        assert {n for n in ran if n not in states} == set(case.skipped), states
        assert {n: nr["result"] for nr in run["nodeRuns"] if (n := nr["node"]["identifier"])} == dict.fromkeys(states, "SUCCESS")
    for path, body in case.requests.items():
        assert any(holds(b, body) for b in echo.bodies(path)), (path, echo.requests)
    outputs = run["variables"]["outputs"]
    for node, expected in case.outputs.items():
        assert holds(outputs.get(node), expected), (node, outputs.get(node))


def compat_rows() -> dict[str, list[str]]:
    """docs/port-compatibility.md's example table: name → its cells."""
    rows = {}
    for line in COMPAT.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\d\d-[A-Z]-[a-z0-9-]+)`", cells[0]) if cells else None
        if match:
            rows[match.group(1)] = cells[1:]
    return rows


def test_compatibility_doc_table_is_true() -> None:
    rows = compat_rows()
    assert sorted(rows) == example_names()
    for name, (validates, runs, *_) in rows.items():
        refusal = VALIDATION.get(name)
        assert validates == ("yes" if refusal is None else f"no ({refusal.kind})"), name
        case = CASES.get(name)
        expected_run = "—" if case is None else "yes" if case.result == "SUCCESS" else f"no: {case.error}"
        assert runs == expected_run, name
