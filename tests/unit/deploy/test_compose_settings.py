"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked without it:
every STEPLINE_* variable it sets is a field of the services' settings (a typo would be ignored
silently by pydantic-settings), and each service it runs exists as `python -m services.<name>`."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from stepline.settings import EmbeddedSettings

COMPOSE = (Path(__file__).parents[3] / "docker-compose.yml").read_text()


def test_every_stepline_variable_is_a_settings_field() -> None:
    names = set(re.findall(r"^\s+(STEPLINE_[A-Z0-9_]+):", COMPOSE, flags=re.MULTILINE))
    assert "STEPLINE_BUS_URL" in names and "STEPLINE_SECRETS_KEY" in names
    fields = {f"STEPLINE_{name.upper()}" for name in EmbeddedSettings.model_fields}
    assert sorted(names - fields) == []


def test_every_service_runs_as_a_module() -> None:
    services = set(re.findall(r"SERVICE: (\w+)", COMPOSE))
    assert services == {"trigger", "scheduler", "executor", "notifier"}
    for name in services:
        assert importlib.util.find_spec(f"services.{name}.__main__") is not None
