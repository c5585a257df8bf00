"""Logic nodes that need no outside system: CONDITION, TRANSFORM, NOOP."""

from __future__ import annotations

from libs.core.errors import ActionError, TemplateError
from libs.core.planner import FALLBACK
from libs.core.templates import is_truthy
from libs.expressions import evaluate as expressions
from services.executor.actions.base import ActionInput, ActionResult


class ConditionAction:
    """Try the options in order; the first true one names the branch, else the fallback."""

    async def execute(self, data: ActionInput) -> ActionResult:
        for index, option in enumerate(data.node.config.get("options", [])):
            try:
                at = f"{data.at}/config/options/{index}/expression"
                matched = is_truthy(await expressions.evaluate(str(option["expression"]), data.context, at=at))
            except TemplateError as exc:
                raise ActionError(f"option {option['identifier']!r}: {exc.message}") from None
            if matched:
                return ActionResult(output={"selectedOption": option["identifier"]}, branch=str(option["identifier"]))
        return ActionResult(output={"selectedOption": None}, branch=FALLBACK)


class TransformAction:
    """`expression` (jq over the context) or `output` (an already rendered JSON value)."""

    async def execute(self, data: ActionInput) -> ActionResult:
        expression = data.node.config.get("expression")
        if expression is None:
            return ActionResult(output=data.config.get("output"))
        try:
            return ActionResult(output=await expressions.evaluate(str(expression), data.context,
                                                                  at=f"{data.at}/config/expression"))
        except TemplateError as exc:
            raise ActionError(exc.message) from None


class NoopAction:
    async def execute(self, data: ActionInput) -> ActionResult:
        return ActionResult(output={})
