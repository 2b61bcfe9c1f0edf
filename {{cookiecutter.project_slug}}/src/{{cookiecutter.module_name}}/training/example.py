"""reports/training_example.html (stage `smoke`): one row of the train split exactly as TRL's
SFTTrainer tokenized it for the smoke run, its trained tokens highlighted, its prompt as the
model sees it, and curate's trainable-token count for that row checked against TRL's mask.

The dataset TRL processed is the source of truth: the page shows what the trainer built, not a
re-enactment of it. How curate counts is in data/masking.py.
"""

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.masking import AssistantTurns, TokenCounter, is_multi_turn, trainable_tokens
from ..document import Block, Heading, Html, Para


def trained_tokens(example: dict[str, Any]) -> tuple[list[int], list[bool]]:
    """(input ids, trained or not) of the first row in one example of TRL's processed train
    dataset: TRL 1.x folds the completion mask into `labels` (-100 = not trained), older
    versions keep a `completion_mask`; a packed example holds several rows (`seq_lengths`)."""
    ids = list(example["input_ids"])
    if "labels" in example:
        trained = [label != -100 for label in example["labels"]]
    else:
        trained = [bool(bit) for bit in example["completion_mask"]]
    if example.get("seq_lengths"):
        ids, trained = ids[: example["seq_lengths"][0]], trained[: example["seq_lengths"][0]]
    return ids, trained


def find_row(tokenizer, rows: list[dict], ids: list[int]) -> dict | None:
    """The row whose tokenized chat starts with `ids` (TRL may cut it to max_length)."""
    for row in rows:
        chat = tokenizer.apply_chat_template(
            row["prompt"] + row["completion"], tokenize=True, return_dict=True
        )["input_ids"]
        if list(chat[: len(ids)]) == ids:
            return row
    return None


def token_pieces(tokenizer, ids: list[int]) -> list[str]:
    """The text of each token: decoding a growing prefix and taking what each token adds, so
    a character split across byte-level tokens is shown once, whole, with its last token."""
    pieces, done = [], ""
    for end in range(1, len(ids) + 1):
        text = tokenizer.decode(
            ids[:end], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        if text.endswith("\ufffd") and end < len(ids):  # the character is not complete yet
            pieces.append("")
            continue
        pieces.append(text[len(done) :])
        done = text
    return pieces


TOKEN_STYLE = """<style>
pre.tokens { white-space: pre-wrap; word-break: break-all; line-height: 1.9; }
pre.tokens span.c { color: #8c959f; }
pre.tokens span.t { background: #ffe58f; color: #1f2328; border-bottom: 2px solid #d4a72c; }
pre.tokens span.t:nth-child(even) { background: #fff1b8; }
pre.tokens span.nl { color: #8c959f; }
</style>"""


def visible(text: str) -> str:
    """Escaped for HTML, each newline marked with a ↵ before it breaks the line."""
    return html.escape(text).replace("\n", '<span class="nl">↵</span>\n')


def token_html(pieces: list[str], trained: list[bool]) -> str:
    """Each token a span (its index in the tooltip), the trained ones highlighted."""
    spans = [
        f'<span class="{"t" if on else "c"}" title="token {index}">{visible(piece)}</span>'
        for index, (piece, on) in enumerate(zip(pieces, trained, strict=True))
    ]
    return TOKEN_STYLE + '\n<pre class="tokens">' + "".join(spans) + "</pre>"


TRAINED = {
    "all": "each assistant turn's answer and what the template writes after it",
    "last": "the final assistant turn and what the template writes after it",
}
MULTI_TURN = {
    "all": "The prompt holds earlier assistant turns: every assistant turn is trained "
    "(train.assistant_turns: all), the user's turns are context.",
    "last": "The prompt holds earlier assistant turns: they are context here; only the final "
    "assistant turn is trained (train.assistant_turns: last).",
}


@dataclass(frozen=True)
class TrainingExample:
    ids: list[int]
    trained: list[bool]
    row: dict | None  # the train row it came from (None: no row tokenizes to it)
    counted: int | None  # curate's trainable tokens for that row
    max_length: int | None
    turns: AssistantTurns = "all"  # train.assistant_turns

    @property
    def n_trained(self) -> int:
        return sum(self.trained)

    @property
    def matches(self) -> bool | None:
        """curate's count equals TRL's (None: the row was not found)."""
        return None if self.counted is None else self.counted == self.n_trained

    def summary(self) -> dict[str, Any]:
        """For reports/smoke.json."""
        return {
            "source": self.row.get("source", self.row.get("id")) if self.row else None,
            "tokens": len(self.ids),
            "trained": self.n_trained,
            "curate_trained": self.counted,
            "matches": self.matches,
        }


def training_example(
    trainer,
    rows: list[dict],
    max_length: int | None,
    count_tokens: TokenCounter,
    turns: AssistantTurns = "all",
) -> TrainingExample | None:
    """The first example of the trainer's processed train dataset, the row it came from (of
    `rows`, the trainer's train rows) and curate's count for that row, made by `count_tokens`
    (counting train.assistant_turns `turns`)."""
    if len(trainer.train_dataset) == 0:
        return None
    ids, trained = trained_tokens(trainer.train_dataset[0])
    row = find_row(trainer.processing_class, rows, ids)
    counted = None
    if row is not None:
        (lengths,) = count_tokens([row["prompt"] + row["completion"]])
        counted = trainable_tokens(lengths, max_length)
    return TrainingExample(ids, trained, row, counted, max_length, turns)


@dataclass(frozen=True)
class ExamplePage:
    """Where the page goes, and the files it names: the train split the row comes from and the
    curate report whose trainable-token audit it checks."""

    page: Path
    train_split: Path
    curate_report: Path


def example_blocks(tokenizer, example: TrainingExample, names: ExamplePage) -> list[Block]:
    """The page: what is trained, the check against curate's count, the highlighted tokens
    and the rendered prompt."""
    row, n = example.row, example.n_trained
    where = (
        f"The row from `{row.get('source', row.get('id', '?'))}` ({names.train_split})"
        if row
        else f"The first row of {names.train_split} that TRL kept"
    )
    cut = f"cut to train.max_length = {example.max_length}" if example.max_length else "not cut"
    blocks: list[Block] = [
        Heading("What the model is trained on", 1),
        Para(
            f"{where}, as TRL's SFTTrainer tokenized it in the smoke run: chat template "
            f"applied, {cut}. **Highlighted** tokens are trained (the loss teaches the model "
            f"to predict each one from the tokens before it): {TRAINED[example.turns]}, the "
            "end-of-turn token included. The grey "
            f"tokens are context. {n} of {len(example.ids)} tokens are trained "
            f"({n / max(len(example.ids), 1):.0%})."
        ),
    ]
    if example.counted is not None:
        verdict = (
            "the same as TRL's mask"
            if example.matches
            else f"**not TRL's count**: the trainable-token audit in {names.curate_report} is off "
            "for this setup (a TRL or chat-template change); rerun `dvc repro curate` after "
            "updating the code, or report it"
        )
        blocks.append(Para(f"curate counts {example.counted} trainable tokens here: {verdict}."))
    if row and is_multi_turn(row["prompt"]):
        blocks.append(Para(MULTI_TURN[example.turns]))
    blocks += [
        Heading("The training sequence"),
        Html(token_html(token_pieces(tokenizer, example.ids), example.trained)),
    ]
    if row:
        prompt = tokenizer.apply_chat_template(
            row["prompt"], tokenize=False, add_generation_prompt=True
        )
        blocks += [
            Heading("The prompt as the model sees it"),
            Para(
                "The chat template's rendering with the generation prompt (↵ marks a newline), "
                "as at eval and inference: the model's answer continues it."
            ),
            Html(f'<pre class="tokens">{visible(prompt)}</pre>'),
        ]
    return blocks
