"""FOREACH: map `items` through an inline node, or through a sub-workflow per item.

Inline (`node`): the inline action runs once per item inside this one attempt, at most
`concurrency` at a time, its templates rendered per item with `.item` and `.index` added to the
context. Output `{results}` in item order. After an item fails no further item starts, and the node
fails naming the lowest failing index, with the results so far in its output.

Sub-workflow (`workflowIdentifier`): every item (an object) is validated as the child's inputs, the
batch is recorded, and the node waits; the scheduler starts the children, at most `concurrency`
running, and completes the node when they have finished (see libs/core/child_runs.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from libs.core.definition import Node
from libs.core.errors import ActionError, TemplateError
from libs.core.limits import Limits, concurrency_problem, items_problem
from libs.core.workspaces import public
from libs.expressions import evaluate as expressions
from services.executor.actions.base import Action, ActionInput, ActionResult
from services.executor.actions.child_runs import ChildRuns
from services.executor.actions.values import describe


@dataclass
class _Progress:
    results: list[Any]
    failures: dict[int, ActionError] = field(default_factory=dict)


class ForeachAction:
    def __init__(self, actions: Mapping[str, Action], children: ChildRuns, limits: Limits = Limits()) -> None:
        self.actions = actions
        self.children = children
        self.limits = limits

    async def execute(self, data: ActionInput) -> ActionResult:
        items = data.config.get("items")
        if not isinstance(items, list):
            raise ActionError(f"config.items must render to an array, got {describe(items)}")
        concurrency = data.config.get("concurrency", 1)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ActionError(f"config.concurrency must be an integer >= 1, got {describe(concurrency)}")
        problem = items_problem(len(items), self.limits) or concurrency_problem(concurrency, self.limits)
        if problem is not None:
            raise ActionError(problem)
        if not items:
            return ActionResult(output={"results": []})
        if "workflowIdentifier" in data.config:
            return await self._children(data, items, concurrency)
        return await self._inline(data, items, concurrency)

    async def _children(self, data: ActionInput, items: list[Any], concurrency: int) -> ActionResult:
        parent = await self.children.parent(data)
        target = await self.children.target(data.config)
        inputs = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise ActionError(f"item {index} must be an object (the inputs of workflow {target.workflow!r}), "
                                  f"got {describe(item)}")
            inputs.append(self.children.inputs(target, item, f"item {index}"))
        await self.children.record(data, parent, target, inputs, mode="each", concurrency=concurrency)
        return ActionResult(output={"total": len(items), "concurrency": concurrency,
                                    "workflowIdentifier": public(target.workflow), "version": target.version}, waiting=True)

    async def _inline(self, data: ActionInput, items: list[Any], concurrency: int) -> ActionResult:
        inline = data.config.get("node")
        node_type = inline.get("type") if isinstance(inline, dict) else None
        action = self.actions.get(str(node_type))
        if not isinstance(inline, dict) or action is None:
            raise ActionError(f"config.node.type {node_type!r} is not supported by this executor")
        node = Node(identifier=data.node.identifier, title=data.node.title, config=inline)
        progress = _Progress(results=[None] * len(items))
        slots = asyncio.Semaphore(concurrency)

        async def one(index: int, item: Any) -> None:
            async with slots:
                if progress.failures:
                    return
                try:
                    progress.results[index] = await self._item(action, node, data, index, item)
                except ActionError as exc:
                    progress.failures[index] = exc

        await asyncio.gather(*(one(index, item) for index, item in enumerate(items)))
        if progress.failures:
            index = min(progress.failures)
            failure = progress.failures[index]
            raise ActionError(f"item {index} failed: {failure.message}", retryable=failure.retryable,
                              output={"results": progress.results, "failedIndex": index})
        return ActionResult(output={"results": progress.results})

    async def _item(self, action: Action, node: Node, data: ActionInput, index: int, item: Any) -> Any:
        context = {**data.context, "item": item, "index": index}
        try:
            config = await expressions.render_config(dict(node.config), context, at=f"{data.at}/config/node")
        except TemplateError as exc:
            raise ActionError(exc.message) from None
        item_input = ActionInput(node=node, config=config, context=context, run_id=data.run_id,
                                 node_run_id=data.node_run_id, node_run_key=f"{data.node_run_key}/item/{index}",
                                 attempt=data.attempt, timeout=data.timeout)
        try:
            result = await action.execute(item_input)
        except ActionError:
            raise
        except TemplateError as exc:
            raise ActionError(exc.message) from None
        except Exception as exc:  # the executor treats an action's unexpected error as retryable
            raise ActionError(f"{type(exc).__name__}", retryable=True) from None
        if result.waiting:
            raise ActionError(f"an inline {node.type} node cannot wait for a completion")
        return result.output
