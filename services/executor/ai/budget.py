"""Token budgets: a node's (`maxTokens`) and a run's (setting `ai_run_token_budget`), checked before
every model call and charged with each reply's usage. A call is never cut short by a budget: the
call that crosses it completes, and the next one is refused."""

from __future__ import annotations

from libs.core.errors import ActionError
from services.executor.ai.models import NO_USAGE, Usage


class BudgetExceeded(ActionError):
    code = "ai_budget_exceeded"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class TokenBudget:
    """Limits by name (`node`, `run`), each with the tokens already spent against it."""

    def __init__(self, **limits: tuple[int, int] | None) -> None:
        """`name=(limit, already_spent)`; None or a limit of 0 means no limit of that name."""
        self.limits = {k: v for k, v in limits.items() if v is not None and v[0] > 0}
        self.spent = NO_USAGE

    def remaining(self) -> int | None:
        """Tokens left under the tightest limit; None when nothing limits them."""
        left = [limit - before - self.spent.total for limit, before in self.limits.values()]
        return min(left) if left else None

    def check(self) -> None:
        """BudgetExceeded naming the limit that is used up."""
        for name, (limit, before) in self.limits.items():
            if before + self.spent.total >= limit:
                raise BudgetExceeded(f"the {name} token budget of {limit} is used up "
                                     f"({before + self.spent.total} tokens spent)")

    def charge(self, usage: Usage) -> None:
        self.spent = self.spent + usage

    def max_tokens(self, requested: int | None) -> int | None:
        """The `max_tokens` of the next call: the request's, lowered to what the budget leaves."""
        left = self.remaining()
        if left is None:
            return requested
        return left if requested is None else min(requested, left)
