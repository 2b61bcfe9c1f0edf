"""Which tokens of a row the model is trained on: the token ids and trained spans that the
trainer hands TRL (training/trainer.py), that curate counts and smoke shows, from one encoder.

A row is a chat whose last turn is the assistant's. It is rendered with the base's chat
template and tokenized (as `apply_chat_template(tokenize=True)` does), and a token is trained
when it is part of an assistant turn's answer: what the model writes after the template's
generation prompt, the content and the end-of-turn token(s) the template closes it with.
train.assistant_turns picks the turns: `all` (every assistant turn of a multi-turn chat, as
chat data sets are meant to be trained) or `last` (the final one; earlier turns are context).

Where an answer starts is TRL's own rule for a prompt/completion row: the common prefix of the
chat's tokens and those of the turns before it rendered with the generation prompt (a prompt
that ends in text the chat lacks, as an empty thought block, starts the answer where they
part). The final answer runs to the end of the chat, whatever the template writes after it.
An earlier answer ends after its end-of-turn tokens: its content's end is where the chat,
rendered again with a marker after that content, first differs, and the end-of-turn tokens are
those the template writes after an answer (a probe chat), as far as the chat's own tokens
agree with them. So a template that renders a turn differently once later turns follow (Qwen 3
drops the empty thought block of earlier answers) is read off the whole chat's rendering. A
template whose turns cannot be told apart this way stops with the row (RowError) rather than
train on a user's text.

The sequence is then cut to train.max_length (its start is kept), and TRL drops a row left
with no trained token: curate quarantines it as `no_trainable_tokens`. With packing a row is
cut the same way before it is packed.
"""

from bisect import bisect_right
from collections.abc import Callable
from os.path import commonprefix
from pathlib import Path
from typing import Literal, NamedTuple

from ..errors import StageError
from .chat import Messages

AssistantTurns = Literal["all", "last"]
MARKER = "\ue000"  # a private-use character: templates neither trim nor escape it

Span = tuple[int, int]


class Lengths(NamedTuple):
    """A rendered row's tokens: `total` in the whole chat, `spans` the [start, end) token
    ranges trained (empty when the counter was asked for totals only)."""

    total: int
    spans: tuple[Span, ...] = ()


class Encoded(NamedTuple):
    """A rendered, tokenized chat and the token ranges the loss is computed on."""

    ids: list[int]
    spans: tuple[Span, ...]

    def mask(self) -> list[int]:
        """1 on trained tokens (TRL's `completion_mask`)."""
        bits = [0] * len(self.ids)
        for start, end in self.spans:
            bits[start:end] = [1] * (end - start)
        return bits


class RowError(StageError):
    """The chat template rejects chat `index` of a batch, or renders it so that its assistant
    turns cannot be told apart; `reason` says which (callers name the row)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(index, reason)  # both in args: it pickles across worker processes

    @property
    def index(self) -> int:
        return self.args[0]

    @property
    def reason(self) -> str:
        return self.args[1]

    def __str__(self) -> str:
        return f"row {self.index}: {self.reason}"


TokenCounter = Callable[..., list[Lengths]]
"""`count(chats, prompts=True)`: the Lengths of each chat (prompts=False: totals only)."""


def trainable_tokens(lengths: Lengths, max_length: int | None) -> int:
    """Tokens the loss is computed on once the row is cut to `max_length` (None: not cut)."""
    total = lengths.total if max_length is None else min(lengths.total, max_length)
    return sum(max(0, min(end, total) - start) for start, end in lengths.spans)


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
    """An earlier assistant turn in the prompt."""
    return any(turn.get("role") == "assistant" for turn in prompt)


def trained_turns(chat: Messages, turns: AssistantTurns) -> list[int]:
    """Indices of the assistant turns trained under train.assistant_turns."""
    if turns == "last":
        return [len(chat) - 1]
    return [k for k, turn in enumerate(chat) if turn.get("role") == "assistant"]


def with_marker(chat: Messages, index: int) -> Messages:
    return [
        {**turn, "content": turn["content"] + MARKER} if k == index else turn
        for k, turn in enumerate(chat)
    ]


class ChatEncoder:
    """Renders and tokenizes chats with `tokenizer` and finds their trained spans."""

    def __init__(self, tokenizer, turns: AssistantTurns = "all") -> None:
        self.tokenizer, self.turns = tokenizer, turns
        # the Rust tokenizer's batch call without offsets: the ids of `tokenizer(text,
        # add_special_tokens=False)`, with less work
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.fast = getattr(backend, "encode_batch_fast", None)
        self.with_offsets = getattr(backend, "encode_batch", None)
        self._end_of_turn: list[int] | None = None

    def encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        if self.fast is not None:
            return [encoding.ids for encoding in self.fast(texts, add_special_tokens=False)]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def render(self, chats: list[Messages], rows: list[int], **kwargs) -> list[str]:
        """The chat template's text of each chat; a template error names its row."""
        from jinja2 import TemplateError

        if not chats:
            return []
        try:
            return self.tokenizer.apply_chat_template(chats, tokenize=False, **kwargs)
        except TemplateError:
            for chat, row in zip(chats, rows, strict=True):
                try:
                    self.tokenizer.apply_chat_template(chat, tokenize=False, **kwargs)
                except TemplateError as error:
                    raise RowError(row, f"the chat template rejects it: {error}") from None
            raise

    def __call__(self, chats: list[Messages], prompts: bool = True) -> list[Encoded]:
        rows = list(range(len(chats)))
        texts = self.render(chats, rows)
        ids = self.encode(texts)
        if not prompts:
            return [Encoded(chat_ids, ()) for chat_ids in ids]
        spans: dict[int, tuple[Span, ...]] = {}
        several = [k for k, chat in enumerate(chats) if len(trained_turns(chat, self.turns)) > 1]
        ends = self.token_ends([texts[k] for k in several])
        for k, token_ends in zip(several, ends, strict=True):
            spans[k] = self.turn_spans(chats[k], Tokens(texts[k], ids[k], token_ends), k)
        last = [k for k in rows if k not in spans]
        starts = self.answer_starts([chats[k] for k in last], [texts[k] for k in last], last, ids)
        for k, start in zip(last, starts, strict=True):
            spans[k] = ((start, len(ids[k])),)
        return [Encoded(chat_ids, spans[k]) for k, chat_ids in enumerate(ids)]

    def answer_starts(
        self, chats: list[Messages], texts: list[str], rows: list[int], ids: list[list[int]]
    ) -> list[int]:
        """Where each chat's final answer starts, by TRL's rule, in one batch."""
        prompts = self.render([chat[:-1] for chat in chats], rows, add_generation_prompt=True)
        # Usually the rendered prompt is the start of the rendered chat and the rest (the
        # answer and its end of turn) tokenizes on its own into the chat's last tokens: then
        # no token crosses the boundary, the prompt's tokens are the chat's first ones, and
        # encoding that short rest is all it takes. Otherwise, as TRL: encode the prompt and
        # take the common prefix.
        starts: dict[int, int] = {}
        rests = {
            k: text[len(prompt) :]
            for k, (text, prompt) in enumerate(zip(texts, prompts, strict=True))
            if text.startswith(prompt)
        }
        for k, rest_ids in zip(rests, self.encode(list(rests.values())), strict=True):
            chat_ids = ids[rows[k]]
            start = len(chat_ids) - len(rest_ids)
            if start >= 0 and chat_ids[start:] == rest_ids:
                starts[k] = start
        others = [k for k in range(len(chats)) if k not in starts]
        for k in others:
            if k not in rests:
                self.check_context(chats[k], len(chats[k]) - 1, prompts[k], texts[k], rows[k])
        for k, prompt_ids in zip(others, self.encode([prompts[k] for k in others]), strict=True):
            starts[k] = common_prefix(prompt_ids, ids[rows[k]])
        return [starts[k] for k in range(len(chats))]

    def check_context(self, chat: Messages, turn: int, prompt: str, text: str, row: int) -> None:
        """The turns before `turn`, rendered on their own with the generation prompt
        (`prompt`), agree with the whole chat (`text`) at least up to the end of the previous
        turn's content: the answer, which starts where they part, holds none of it."""
        if turn and len(commonprefix([prompt, text])) < self.content_end(chat, turn - 1, text, row):
            raise RowError(
                row,
                f"the chat template renders the turns before assistant turn {turn + 1} "
                "differently once that turn follows them (a system prompt or header that depends "
                "on the turns after it), so the answer's tokens cannot be told apart from theirs: "
                "fix the row or the base's chat template",
            )

    def content_end(self, chat: Messages, turn: int, text: str, row: int) -> int:
        """Where turn `turn`'s content ends in `text` (the chat's rendering): where the chat
        rendered with a marker after that content first differs from it."""
        (marked,) = self.render([with_marker(chat, turn)], [row])
        return len(commonprefix([text, marked]))

    def end_of_turn(self, row: int) -> list[int]:
        """The tokens the template writes after an answer (read from a probe chat)."""
        if self._end_of_turn is None:
            probe = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}]
            (text,) = self.render([with_marker(probe, 1)], [row])
            after = text.rpartition(MARKER)[2] if MARKER in text else ""
            self._end_of_turn = self.encode([after])[0] if after else []
        return self._end_of_turn

    def token_ends(self, texts: list[str]) -> list[list[int] | None]:
        """Where each token of each text ends (characters), or None without offsets."""
        if self.with_offsets is None or not texts:
            return [None] * len(texts)
        encodings = self.with_offsets(texts, add_special_tokens=False)
        return [[end for _, end in encoding.offsets] for encoding in encodings]

    def boundary(self, tokens: "Tokens", position: int) -> int | None:
        """How many of the chat's tokens make up its text up to `position`; None when a token
        straddles it. A token ending right there settles it (no token crosses the cut, and BPE
        and Unigram alike then tokenize the text before it alone into the same tokens);
        otherwise that text is tokenized and compared."""
        if tokens.ends is not None:
            k = bisect_right(tokens.ends, position)
            if (tokens.ends[k - 1] if k else 0) == position:
                return k
        (before,) = self.encode([tokens.text[:position]])
        return len(before) if tokens.ids[: len(before)] == before else None

    def turn_spans(self, chat: Messages, tokens: "Tokens", row: int) -> tuple[Span, ...]:
        """The trained spans of a chat with several trained turns (see the module's doc)."""
        text, ids = tokens.text, tokens.ids
        spans: list[Span] = []
        for turn in trained_turns(chat, self.turns):
            (prompt,) = self.render([chat[:turn]], [row], add_generation_prompt=True)
            start = self.boundary(tokens, len(prompt)) if text.startswith(prompt) else None
            if start is None:  # as TRL: where the tokens of the prompt and the chat part
                if not text.startswith(prompt):  # else the turns before are the chat's start
                    self.check_context(chat, turn, prompt, text, row)
                start = common_prefix(self.encode([prompt])[0], ids)
            end = len(ids)
            if turn < len(chat) - 1:
                # the content's end must be a token boundary of the chat, after the start
                stop = self.boundary(tokens, self.content_end(chat, turn, text, row))
                if stop is None or stop < start:
                    raise not_prefix_stable(row, turn)
                end = stop + common_prefix(self.end_of_turn(row), ids[stop:])
            if spans and start < spans[-1][1]:
                raise not_prefix_stable(row, turn)
            spans.append((start, end))
        return tuple(spans)


class Tokens(NamedTuple):
    """A rendered chat, its token ids and where each token ends in the text (None: no
    offsets from this tokenizer)."""

    text: str
    ids: list[int]
    ends: list[int] | None


def not_prefix_stable(row: int, turn: int) -> RowError:
    return RowError(
        row,
        f"the chat template renders assistant turn {turn + 1} so that its answer cannot be told "
        "apart from the turns after it (its content does not end on a token boundary of the "
        "whole chat, or it overlaps the next answer): set train.assistant_turns to last, or "
        "use a base whose template renders each turn the same whatever follows",
    )


def token_counter(tokenizer, turns: AssistantTurns = "all") -> TokenCounter:
    """Counts with `tokenizer` what training trains on (ChatEncoder)."""
    encode = ChatEncoder(tokenizer, turns)

    def count(chats: list[Messages], prompts: bool = True) -> list[Lengths]:
        return [Lengths(len(row.ids), row.spans) for row in encode(chats, prompts)]

    return count


def tokenizer_counter(base_dir: Path, turns: AssistantTurns = "all") -> TokenCounter:
    """A counter with the base model's tokenizer."""
    from ..models.loading import load_tokenizer

    return token_counter(load_tokenizer(base_dir), turns)
