"""The `stepline` CLI, driven in-process through `main([...])`.

Local commands (validate, schema, argument errors) need no server; "cannot connect" points --api at a
loopback port nobody listens on; the last test serves a real embedded engine on loopback.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args

import pytest
import uvicorn

from libs.core.node_kinds import Completer
from stepline.cli import main
from stepline.cli.inputs import parse_value
from stepline.cli.render import WAITING_HINTS, Progress, final_line, waiting_hints
from tests.auth_helpers import key_of

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"

HELLO: dict[str, Any] = {
    "identifier": "hello",
    "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
        {"identifier": "greet", "config": {"type": "TRANSFORM", "expression": "{greeting: \"hi\"}"}},
    ],
    "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "greet"}],
}


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


# ---- validate -----------------------------------------------------------------------------------

def test_validate_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "hello.json", HELLO)
    assert main(["validate", path]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: valid (2 nodes, 1 connection)"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_every_example_is_valid(example: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLES / example)]) == 0
    assert ": valid (" in capsys.readouterr().out


def test_validate_invalid_prints_one_pointer_line_per_issue(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    broken = json.loads(json.dumps(HELLO))
    broken["nodes"][1]["config"]["type"] = "BOGUS"
    broken["connections"].append({"sourceIdentifier": "greet", "targetIdentifier": "nowhere"})
    path = write(tmp_path, "broken.json", broken)

    assert main(["validate", path]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0].startswith(f"stepline: error: {path}: invalid workflow definition (")
    issues = [line for line in lines if line.startswith(f"{path}#/")]
    assert any(line.startswith(f"{path}#/nodes/1/config/type: ") for line in issues)
    assert any(line.startswith(f"{path}#/connections/1/") and "nowhere" in line for line in issues)
    assert "Traceback" not in captured.err


def test_validate_bad_json_names_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.json", '{"identifier": "x",\n  "nodes": [,]}')
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"stepline: error: {path}: invalid JSON at line 2 column 13: ")
    assert "Traceback" not in err


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "absent.json")
    assert main(["validate", path]) == 2
    assert capsys.readouterr().err.strip() == f"stepline: error: {path}: no such file"


# ---- schema -------------------------------------------------------------------------------------

def test_schema_prints_a_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert isinstance(schema, dict)
    assert "properties" in schema or "$defs" in schema


# ---- run inputs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("42", 42), ("1.5", 1.5), ("true", True), ("null", None), ('{"a": [1]}', {"a": [1]}),
    ('"1.0"', "1.0"), ("1.4.2", "1.4.2"), ("payments", "payments"), ("", ""), ("NaN", "NaN"),
    ("1e999", "1e999"),
])
def test_input_values_are_json_when_they_parse(text: str, value: Any) -> None:
    assert parse_value(text) == value


@pytest.mark.parametrize("argument", ["noequals", "=value"])
def test_bad_input_syntax_exits_2_before_any_request(argument: str, capsys: pytest.CaptureFixture[str]) -> None:
    api = f"http://127.0.0.1:{unused_port()}"
    assert main(["--api", api, "run", "hello", "--input", argument]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"stepline: error: --input {argument!r}: expected KEY=VALUE")
    assert "cannot connect" not in err


def test_inputs_json_must_be_an_object(capsys: pytest.CaptureFixture[str]) -> None:
    api = f"http://127.0.0.1:{unused_port()}"
    assert main(["--api", api, "run", "hello", "--inputs-json", "[1, 2]"]) == 2
    assert "must be a JSON object" in capsys.readouterr().err


def test_version_and_tag_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "hello", "--version", "1", "--tag", "$LIVE"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# ---- no server ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["runs"], ["show", "wfr_0000000000000000"], ["run", "hello", "--wait"]])
def test_cannot_connect_tells_the_user_to_run_stepline_up(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    api = f"http://127.0.0.1:{unused_port()}"
    assert main(["--api", api, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"stepline: error: cannot connect to the Stepline API at {api}")
    assert "stepline up" in err
    assert "Traceback" not in err


def test_api_option_is_accepted_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    api = f"http://127.0.0.1:{unused_port()}"
    assert main(["runs", "--api", api]) == 2
    assert api in capsys.readouterr().err


def test_api_must_be_an_http_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--api", "localhost:8080", "runs"])
    assert exit_info.value.code == 2
    assert "not an http(s) URL" in capsys.readouterr().err


def test_apply_validates_locally_before_calling_the_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = {**HELLO, "connections": [{"sourceIdentifier": "greet", "targetIdentifier": "trigger"}]}
    path = write(tmp_path, "broken.json", broken)
    api = f"http://127.0.0.1:{unused_port()}"
    assert main(["--api", api, "apply", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}#/connections/0/" in err
    assert "cannot connect" not in err


# ---- rendering ----------------------------------------------------------------------------------

def test_progress_prints_a_line_per_node_change() -> None:
    run: dict[str, Any] = {
        "identifier": "wfr_x", "status": "IN_PROGRESS",
        "nodes": {"trigger": {"state": "SUCCEEDED", "attempt": 1}, "deploy": {"state": "WAITING", "attempt": 1}},
        "nodeRuns": [{"identifier": "wfnr_d1", "nodeIdentifier": "deploy", "attempt": 1, "error": None}],
    }
    progress = Progress()
    assert progress.changes(run) == ["  ✓ trigger SUCCEEDED", "  … deploy WAITING (node run wfnr_d1)"]
    assert progress.changes(run) == []
    run["nodes"]["deploy"] = {"state": "FAILED", "attempt": 1}
    run["nodes"]["deploy-prod"] = {"state": "SKIPPED", "attempt": 1}
    run["nodeRuns"][0]["error"] = "POST http://x/ answered HTTP 500"
    assert progress.changes(run) == ["  ✗ deploy FAILED: POST http://x/ answered HTTP 500", "  - deploy-prod SKIPPED"]


def test_final_line_has_result_and_duration() -> None:
    run = {"identifier": "wfr_x", "status": "COMPLETED", "result": "SUCCESS",
           "createdAt": "2025-01-01T00:00:00.000Z", "completedAt": "2025-01-01T00:00:00.420Z"}
    assert final_line(run) == "run wfr_x COMPLETED SUCCESS in 0.42s"


# ---- up -----------------------------------------------------------------------------------------

def test_up_refuses_a_missing_examples_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--data-dir", str(tmp_path), "--examples", str(tmp_path / "absent")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_up_reports_invalid_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--data-dir", str(tmp_path), "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stepline: error: invalid engine settings")
    assert "port:" in err


# ---- against a real engine ----------------------------------------------------------------------

@pytest.fixture
async def served(engine: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The in-process engine's API on a loopback port; yields its base URL. The CLI finds the
    engine's owner key in $STEPLINE_API_KEY."""
    monkeypatch.setenv("STEPLINE_API_KEY", key_of(engine.settings.data_dir))
    port = unused_port()
    server = uvicorn.Server(uvicorn.Config(engine.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def cli(api: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """`main` in a worker thread (it blocks), so the engine keeps running on this loop."""
    code, out, _ = await cli_full(api, capsys, *argv)
    return code, out


async def cli_full(api: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["--api", api, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_apply_run_wait_runs_show_logs_against_an_engine(served: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    example = str(EXAMPLES / "hello-transform.json")
    assert await cli(served, capsys, "apply", example) == (0, "created hello-transform version 1\n")
    assert await cli(served, capsys, "apply", example) == (0, "updated hello-transform to version 2\n")

    code, out = await cli(served, capsys, "run", "hello-transform", "--input", "name=Ada", "--wait", "--timeout", "30")
    assert code == 0, out
    lines = out.splitlines()
    run_id = lines[0].split()[1]
    assert "  ✓ greet SUCCEEDED" in lines
    assert lines[-1].startswith(f"run {run_id} COMPLETED SUCCESS in ")

    code, out = await cli(served, capsys, "runs", "--workflow", "hello-transform")
    assert code == 0 and run_id in out and "SUCCESS" in out
    assert run_id in (await cli(served, capsys, "runs", "--since", "1h", "--trigger", "API"))[1]
    assert await cli(served, capsys, "runs", "--since", "2999-01-01T00:00:00Z") == (0, "no runs\n")

    code, out = await cli(served, capsys, "show", run_id, "--json")
    assert json.loads(out)["variables"]["outputs"]["greet"] == {"greeting": "Hello, Ada"}

    code, out = await cli(served, capsys, "show", run_id)
    assert code == 0 and "greet" in out and "Hello, Ada" in out

    assert (await cli(served, capsys, "logs", run_id))[0] == 0
    assert (await cli(served, capsys, "run", "hello-transform", "--input", "unknown=1"))[0] == 2


async def test_run_wait_exits_1_when_the_run_fails(served: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    failing = json.loads(json.dumps(HELLO))
    failing["identifier"] = "failing"
    failing["nodes"][1]["config"]["expression"] = "error(\"boom\")"
    assert (await cli(served, capsys, "apply", write(tmp_path, "failing.json", failing)))[0] == 0

    code, out = await cli(served, capsys, "run", "failing", "--wait", "--timeout", "30")

    assert code == 1, out
    assert any(line.startswith("  ✗ greet FAILED: ") and "boom" in line for line in out.splitlines())
    assert " COMPLETED FAILED in " in out.splitlines()[-1]


async def test_run_wait_exits_3_when_the_timeout_elapses(served: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    waiting = json.loads(json.dumps(HELLO))
    waiting["identifier"] = "waiting"
    waiting["nodes"][1] = {"identifier": "approve", "config": {
        "type": "WEBHOOK", "url": f"{served}/healthz", "method": "GET", "synchronized": False}}
    waiting["connections"][0]["targetIdentifier"] = "approve"
    assert (await cli(served, capsys, "apply", write(tmp_path, "waiting.json", waiting)))[0] == 0

    code = await asyncio.to_thread(main, ["--api", served, "run", "waiting", "--wait", "--timeout", "1.5"])

    captured = capsys.readouterr()
    assert code == 3, captured
    assert "  … approve WAITING (node run wfnr_" in captured.out
    assert "stepline: error: timed out after 1.5s waiting for run wfr_" in captured.err


async def test_cancel_rerun_pause_resume_against_an_engine(served: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    example = str(EXAMPLES / "hello-transform.json")
    assert (await cli(served, capsys, "apply", example))[0] == 0
    code, out = await cli(served, capsys, "run", "hello-transform", "--input", "name=Ada", "--wait", "--timeout", "30")
    run_id = out.splitlines()[0].split()[1]
    assert code == 0

    code, out = await cli(served, capsys, "rerun", run_id)
    assert code == 0 and f"(rerun of {run_id} from start)" in out

    code = await asyncio.to_thread(main, ["--api", served, "cancel", run_id])
    assert code == 2, "a completed run cannot be cancelled"
    assert "already completed" in capsys.readouterr().err

    assert await cli(served, capsys, "pause", "hello-transform") == (
        0, "workflow hello-transform paused: it starts no new runs until resumed\n")
    code = await asyncio.to_thread(main, ["--api", served, "run", "hello-transform", "--input", "name=Ada"])
    assert code == 2 and "is paused" in capsys.readouterr().err
    assert (await cli(served, capsys, "resume", "hello-transform"))[0] == 0
    assert (await cli(served, capsys, "run", "hello-transform", "--input", "name=Ada"))[0] == 0


async def test_the_cli_finds_the_local_key_file_and_explains_a_refusal(
        engine: Any, served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.delenv("STEPLINE_API_KEY")
    monkeypatch.chdir(tmp_path)
    code, _, err = await cli_full(served, capsys, "runs")
    assert code == 2 and "--api-key" in err and "no API key" in err
    (tmp_path / ".stepline").mkdir()
    (tmp_path / ".stepline" / "admin.key").write_text(key_of(engine.settings.data_dir) + "\n")
    code, out = await cli(served, capsys, "runs")
    assert (code, out) == (0, "no runs\n")
    code, _, err = await cli_full(served, capsys, "runs", "--api-key", "stl_" + "a" * 52)
    assert code == 2 and "unknown, revoked or expired" in err


async def test_keys_create_list_revoke(served: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = await cli(served, capsys, "keys", "create", "--role", "viewer", "--user", "vera@example.com")
    assert code == 0 and out.startswith("stl_"), out
    viewer = out.strip()
    code, out = await cli(served, capsys, "keys", "list")
    assert code == 0 and "vera@example.com" in out and viewer not in out
    key_id = next(line.split()[0] for line in out.splitlines() if "vera@example.com" in line)
    assert await cli(served, capsys, "keys", "revoke", key_id) == (0, f"API key {key_id} revoked\n")
    code, _, err = await cli_full(served, capsys, "runs", "--api-key", viewer)
    assert code == 2 and "revoked" in err


async def test_keys_create_offline_writes_a_working_key_into_the_store(
        engine: Any, served: str, capsys: pytest.CaptureFixture[str]) -> None:
    store_url = f"sqlite:///{engine.settings.sqlite_path()}"
    code = await asyncio.to_thread(main, ["keys", "create", "--store-url", store_url, "--workspace", "ops",
                                          "--role", "admin", "--user", "ops@example.com"])
    key = capsys.readouterr().out.strip()
    assert code == 0 and key.startswith("stl_")
    code, out = await cli(served, capsys, "--api-key", key, "keys", "list")
    assert code == 0 and "ops@example.com" in out and "bootstrap" not in out, "an admin of ops lists ops keys"
    assert [w.identifier for w in await engine.app.state.context.workspaces.list()] == ["default", "ops"]


def test_show_says_how_each_waiting_node_moves_on() -> None:
    """APPROVAL and INPUT through their routes, DELAY and child runs by themselves (a node-run PATCH
    would answer 409), every other waiting node by the PATCH."""
    assert set(WAITING_HINTS) == set(get_args(Completer))
    types = {"gate": "APPROVAL", "ask": "INPUT", "pause": "DELAY", "hook": "WEBHOOK", "loop": "FOREACH"}
    run = {"identifier": "wfr_1", "nodes": {n: {"state": "WAITING"} for n in types},
           "nodeRuns": [{"nodeIdentifier": n, "identifier": f"wfnr_{n}", "nodeConfigType": t} for n, t in types.items()]}
    hints = dict(line.split(" is WAITING: ") for line in waiting_hints(run)[1:])
    assert hints["gate"].startswith("decide it with POST /v1/workflows/runs/wfr_1/nodes/gate/approval")
    assert hints["ask"].startswith("answer it with POST /v1/workflows/runs/wfr_1/nodes/ask/input")
    assert "PATCH" not in hints["pause"] and "delay ends" in hints["pause"]
    assert hints["loop"] == "it goes on by itself when its child runs end"
    assert hints["hook"] == "complete it with PATCH /v1/workflows/nodes/runs/wfnr_hook"
