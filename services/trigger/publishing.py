"""The trigger's name on the bus: the source of every message it publishes (libs/bus/publisher.py),
for its API (`build_app`) and its workers (`build_trigger_workers`) alike."""

from __future__ import annotations

SOURCE = "stepline/trigger"
