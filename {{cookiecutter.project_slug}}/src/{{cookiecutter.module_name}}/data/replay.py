"""Replay rows: general chats mixed into train against forgetting (split.replay_fraction).

Their answers are, by default, the base model's own (split.replay_answers: base), generated
once per base by the `replay` stage: training on them teaches the fine-tune to keep answering
general prompts the way the base did (self-distillation), where hand-written answers in another
style pull the model away from the base a second way. An answer the base did not finish within
split.replay_max_new_tokens is dropped: training on it would teach stopping mid-sentence."""

from collections.abc import Sequence
from pathlib import Path

from ..errors import StageError
from ..io import read_jsonl
from .chat import Messages


def replay_prompt(row: dict) -> Messages:
    """The chat of a data/replay row up to (without) its final assistant answer."""
    messages = row["messages"]
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError(f"replay row {row.get('id', '?')}: the last turn must be the assistant's")
    return messages[:-1]


def with_answers(rows: Sequence[dict], answers: Sequence[str | None]) -> list[dict]:
    """The rows with their final answer replaced by `answers` (None or empty: the row is
    dropped), marked `answered_by: base`."""
    return [
        {**row, "messages": [*replay_prompt(row), {"role": "assistant", "content": answer}]}
        | {"answered_by": "base"}
        for row, answer in zip(rows, answers, strict=True)
        if answer
    ]


def replay_chats(path: Path, fraction: float) -> list[dict]:
    """The chats of `path` (none when replay is off); a missing file or a row without a final
    assistant answer stops the stage, naming it."""
    if fraction == 0:
        return []
    if not path.exists():
        raise StageError(
            f"split.replay_fraction is {fraction} but {path} does not exist: add it (README "
            "of data/replay) or set split.replay_fraction=0"
        )
    rows = read_jsonl(path)
    for line, row in enumerate(rows, start=1):
        try:
            replay_prompt(row)
        except (KeyError, TypeError, ValueError) as error:
            raise StageError(
                f"{path}:{line}: not a chat ending in an assistant answer ({error!r}): "
                '{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}'
            ) from None
    return rows
