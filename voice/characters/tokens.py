"""Token counting for prompt budgets: a cheap estimate unless the caller has a tokenizer."""

from __future__ import annotations

from collections.abc import Callable

#: Counts the tokens of a text. Pass the model's real tokenizer where one is at hand.
TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """About four characters per token (English prose on BPE tokenizers), rounded up.

    It overestimates short words and underestimates non-Latin scripts; budgets built on
    it should keep some headroom below the model's context size.
    """
    return -(-len(text) // 4)
