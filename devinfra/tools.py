"""The external tools the development servers need: `java` (Kafka), `mvn` (its jars), `go` (FerretDB)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from devinfra.errors import MissingToolError

INSTALL_HINTS: dict[str, tuple[str, str]] = {
    "java": ("to run the Kafka broker",
             "`apt-get install openjdk-17-jre-headless` (Java 17 or newer), or set JAVA_HOME"),
    "mvn": ("to fetch the Kafka jars from Maven Central", "`apt-get install maven`"),
    "go": ("to build FerretDB", "Go 1.24 or newer from https://go.dev/dl/ with `go` on PATH"),
}


def find_tool(name: str) -> str:
    """Absolute path of a required tool, or MissingToolError saying how to get it."""
    if name == "java" and (home := os.environ.get("JAVA_HOME")):
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        needed_for, hint = INSTALL_HINTS[name]
        raise MissingToolError(name, needed_for, hint)
    return found


def java_version(java: str) -> str:
    """`java -version`'s text (it goes to stderr), e.g. 'openjdk version "17.0.15" 2025-04-15 ...'."""
    return subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr.strip()


def java_major(version_text: str) -> int:
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if match is None:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def go_minor(go: str) -> tuple[int, int]:
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"go(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
