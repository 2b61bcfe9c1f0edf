"""Which tokens of a row the model is trained on, counted the way TRL's SFTTrainer builds them.

TRL tokenizes a prompt/completion row twice with the chat template: the prompt alone with the
generation prompt, and prompt + completion. The tokens the two share (their common prefix) are
context, masked out of the loss; the rest is trained: the final assistant turn and whatever
the template writes after it (the end-of-turn token, often with a newline after it). Earlier
assistant turns of a multi-turn chat belong to the prompt, so they are context too. The
sequence is then cut to train.max_length (its start is kept), and TRL silently drops a row
left with no trained token. With packing, a row is cut to max_length the same way before it
is packed.

curate counts every row this way in its token pass (a row left with nothing to train is
quarantined as `no_trainable_tokens`); smoke checks the count against the dataset TRL built and
renders that row with its trained tokens highlighted (reports/training_example.html).
"""

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..paths import BASE_MODEL_DIR
from .chat import Messages


class Lengths(NamedTuple):
    """A rendered row's tokens: `total` in the whole chat, `prompt` the leading ones TRL masks
    (0 when the counter was asked for totals only)."""

    total: int
    prompt: int


TokenCounter = Callable[..., list[Lengths]]
"""`count(chats, prompts=True)`: the Lengths of each chat (its last turn is the completion)."""


def trainable_tokens(lengths: Lengths, max_length: int | None) -> int:
    """Tokens the loss is computed on once the row is cut to `max_length` (None: not cut)."""
    total = lengths.total if max_length is None else min(lengths.total, max_length)
    return max(0, total - lengths.prompt)


def common_prefix(ids: list[int], other: list[int]) -> int:
    """Leading tokens the two share (TRL's `common_prefix_length`); the prompt is nearly always
    a prefix of the whole chat, which one slice comparison settles."""
    if other[: len(ids)] == ids:
        return len(ids)
    return next(
        (k for k, (a, b) in enumerate(zip(ids, other, strict=False)) if a != b),
        min(len(ids), len(other)),
    )


def is_multi_turn(prompt: Messages) -> bool:
    """An earlier assistant turn in the prompt: context, only the final answer is trained."""
    return any(turn.get("role") == "assistant" for turn in prompt)


def token_counter(tokenizer) -> TokenCounter:
    """Counts with `tokenizer`: the chat template, then the tokenizer, as TRL does it."""
    # the Rust tokenizer's batch call without offsets: same ids, less work
    backend = getattr(tokenizer, "backend_tokenizer", None)
    fast = getattr(backend, "encode_batch_fast", None)

    def encode(texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        if fast is not None:
            return [encoding.ids for encoding in fast(texts, add_special_tokens=False)]
        return tokenizer(texts, add_special_tokens=False)["input_ids"]

    def count(chats: list[Messages], prompts: bool = True) -> list[Lengths]:
        texts = tokenizer.apply_chat_template(chats, tokenize=False)
        chat_ids = encode(texts)
        if not prompts:
            return [Lengths(len(ids), 0) for ids in chat_ids]
        prompt_texts = tokenizer.apply_chat_template(
            [chat[:-1] for chat in chats], tokenize=False, add_generation_prompt=True
        )
        # Usually the rendered prompt is the start of the rendered chat and the rest (the
        # answer and its end of turn) tokenizes on its own into the chat's last tokens: then
        # no token crosses the boundary, the prompt's tokens are the chat's first ones, and
        # encoding that short rest is all it takes. Otherwise, as TRL: encode the prompt and
        # take the common prefix.
        masked: dict[int, int] = {}  # chat -> its prompt tokens
        rests = {
            k: text[len(prompt) :]
            for k, (text, prompt) in enumerate(zip(texts, prompt_texts, strict=True))
            if text.startswith(prompt)
        }
        for k, rest_ids in zip(rests, encode(list(rests.values())), strict=True):
            start = len(chat_ids[k]) - len(rest_ids)
            if start >= 0 and chat_ids[k][start:] == rest_ids:
                masked[k] = start
        others = [k for k in range(len(chats)) if k not in masked]
        for k, prompt_ids in zip(others, encode([prompt_texts[k] for k in others]), strict=True):
            masked[k] = common_prefix(prompt_ids, chat_ids[k])
        return [Lengths(len(ids), masked[k]) for k, ids in enumerate(chat_ids)]

    return count


def tokenizer_counter(base_dir: Path = BASE_MODEL_DIR) -> TokenCounter:
    """A counter with the base model's tokenizer."""
    from ..training.modeling import load_tokenizer

    return token_counter(load_tokenizer(base_dir))
