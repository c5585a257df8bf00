"""INPUT: record the form and who may answer it, and wait for the answers (libs/core/input_node.py).

The node waits with output `{request: {description, userInputs, buttons, outlets, responders},
responses: []}`; `POST /v1/workflows/runs/{run}/nodes/{node}/input` records each answer and completes
the node, taking the first outlet whose quorum is met.
"""

from __future__ import annotations

from libs.core.input_node import buttons
from services.executor.actions.base import ActionInput, ActionResult

REQUEST_FIELDS = ("description", "userInputs", "outlets", "responders")


class InputAction:
    async def execute(self, data: ActionInput) -> ActionResult:
        request = {k: data.config[k] for k in REQUEST_FIELDS if k in data.config}
        return ActionResult(output={"request": {**request, "buttons": buttons(data.config)}, "responses": []},
                            waiting=True)
