"""llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`, the same arguments) with a
default answer length: a chat completion request that sets no `max_tokens` gets at most
`--max_answer_tokens` tokens (default 256) instead of whatever is left of the context.

Run by `devinfra.model` with the interpreter of the model's own virtual environment (this
file imports only llama_cpp). A 135M model may ramble, in JSON mode especially, until the context is
full: minutes on a small CPU for one call, and no room left for a repair turn.
"""

from __future__ import annotations

import sys

from llama_cpp.server import types
from llama_cpp.server.__main__ import main

DEFAULT_ANSWER_TOKENS = 256


def answer_tokens(argv: list[str]) -> int:
    """`--max_answer_tokens N` taken out of `argv` (llama_cpp.server does not know it)."""
    if "--max_answer_tokens" not in argv:
        return DEFAULT_ANSWER_TOKENS
    at = argv.index("--max_answer_tokens")
    value = int(argv[at + 1])
    del argv[at:at + 2]
    return value


def cap_chat_answers(limit: int) -> None:
    request = types.CreateChatCompletionRequest
    request.model_fields["max_tokens"].default = limit
    request.model_rebuild(force=True)


if __name__ == "__main__":
    cap_chat_answers(answer_tokens(sys.argv))
    main()
