"""`devinfra.model`: the local language model's server and its command line, for real (the
build is cached in `.cache/infra/model`; the session fixture `local_model` builds it if needed, or
skips, or fails under `STEPLINE_REQUIRE_INFRA=1`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devinfra import DevInfra, free_port
from devinfra.model import MODEL_ANSWER_TOKENS, MODEL_NAME
from devinfra.ports import port_free
from tests.infra_fixtures import CACHE_DIR, LocalModel

pytestmark = [pytest.mark.model, pytest.mark.timeout(300)]


def devinfra(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m devinfra model ...` from the repository root (devinfra/ is not installed)."""
    return subprocess.run([sys.executable, "-m", "devinfra", "model", *args], capture_output=True,
                          text=True, timeout=180, check=False, cwd=Path(__file__).resolve().parents[2])


def chat(model: LocalModel, **extra: object) -> dict[str, object]:
    body = {"model": model.model, "messages": [{"role": "user", "content": "Tell a long story about a dragon."}],
            **extra}
    answer = httpx.post(f"{model.base_url}/chat/completions", json=body, timeout=240)
    assert answer.status_code == 200, answer.text
    reply: dict[str, object] = answer.json()
    return reply


def test_the_server_answers_with_usage_and_caps_unbounded_answers(local_model: LocalModel) -> None:
    models = httpx.get(f"{local_model.base_url}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [MODEL_NAME]
    usage = chat(local_model)["usage"]
    assert isinstance(usage, dict) and usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= MODEL_ANSWER_TOKENS, usage
    short = chat(local_model, max_tokens=5)["usage"]
    assert isinstance(short, dict) and 0 < short["completion_tokens"] <= 5, short


def test_a_cached_build_is_reused_at_once(local_model: LocalModel) -> None:
    began = time.monotonic()
    build = DevInfra(CACHE_DIR).ensure_model()
    assert time.monotonic() - began < 5.0
    assert build.gguf.stat().st_size > 90_000_000 and build.python.is_file()


def test_model_up_status_provider_and_down(local_model: LocalModel, tmp_path: Path) -> None:
    port = free_port()
    base = ["--dir", str(tmp_path), "--model-port", str(port)]
    up = devinfra("up", *base)
    try:
        assert up.returncode == 0, up.stderr
        url = f"http://127.0.0.1:{port}/v1"
        assert f"model     {url}" in up.stdout and "STEPLINE_AI_PROVIDERS=" in up.stdout
        assert "already running" in devinfra("up", *base).stdout
        status = devinfra("status", *base)
        assert status.returncode == 0 and "ready" in status.stdout, status.stdout
        provider = json.loads(devinfra("provider", *base).stdout)
        assert provider == [{"name": "local", "kind": "openai", "baseUrl": url, "model": MODEL_NAME}]
    finally:
        down = devinfra("down", *base)
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout
    assert port_free(port)
    assert devinfra("status", *base).returncode == 1
    assert devinfra("provider", *base).stdout == ""


def test_a_busy_port_is_a_clear_error(local_model: LocalModel, tmp_path: Path) -> None:
    if local_model.server is None:
        pytest.skip("STEPLINE_TEST_MODEL_URL points at a server this session did not start")
    port = local_model.server.port
    taken = devinfra("up", "--dir", str(tmp_path), "--model-port", str(port))
    assert taken.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in taken.stderr
