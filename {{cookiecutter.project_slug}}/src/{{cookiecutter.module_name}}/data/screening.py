"""Pass 1 of curate on one chunk of a file, checks that need only the row itself: parse,
the file format's schema and the chat schema, the JSON-target audit, the quality filters and
token counts; then the exact-duplicate key, the target and the MinHash signature of each row
that survives. Pure, so chunks can be screened in worker processes (data/workers.py)."""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import StageError
from ..params import CurateParams, TaskParams
from . import dedup
from .formats import ROW_SCHEMAS, Format, detect_format, rejected_turns, to_messages
from .masking import RowError, TokenCounter, trainable_tokens
from .quality import dominant_script, quality_reason
from .schemas import CHAT_SCHEMA, first_failures, target_schema
from .textnorm import abridge, content_text, exact_key, normalise, prompt_text, target_key


def parse_line(data: bytes) -> tuple[Any, str | None]:
    """Decode one raw line into a JSON object, or give the reason it can't be."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not_utf8"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None, "not_json"
    if not isinstance(obj, dict):
        return None, "not_json_object"
    return obj, None


@dataclass
class ChunkVerdict:
    """What pass 1 finds in one chunk of a file; positions are offsets within the chunk."""

    rejected: list[tuple[int, str]] = field(default_factory=list)
    format_flags: Counter = field(default_factory=Counter)
    tokens: list[tuple[int, int]] = field(default_factory=list)
    trainable: list[tuple[int, int]] = field(default_factory=list)
    survivors: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    scripts: list[tuple[str | None, str | None]] = field(default_factory=list)  # prompt, target
    targets: list[tuple[str, str]] = field(default_factory=list)  # (target_key, abridged text)
    labels: list[tuple[str, ...] | None] = field(default_factory=list)  # task.score_fields values
    signatures: np.ndarray | None = None
    texts: list[str] = field(default_factory=list)  # curate.engine other than local: to spill


def screen(items: list, schema, column: str, value_of, verdict: ChunkVerdict) -> list:
    """Reject the items (tuples starting with the offset) whose value fails `schema`, under the
    first failing check; return the rest."""
    if not items:
        return items
    failures = first_failures(schema, pd.DataFrame({column: [value_of(item) for item in items]}))
    verdict.rejected += [(items[position][0], reason) for position, reason in failures.items()]
    return [item for k, item in enumerate(items) if k not in failures]


def screen_chunk(
    chunk: list[bytes],
    fmt: Format,
    task: TaskParams,
    cfg: CurateParams,
    count_tokens: TokenCounter | None,
    max_tokens: int | None,
    max_length: int | None = None,
) -> ChunkVerdict:
    """Pass 1 on one chunk: every check that needs only the row itself, then the exact-dup key
    and the MinHash signature of each surviving row. Pure, so chunks can run in parallel.

    Token counts come from one pass of `count_tokens` per chunk: each SFT row's length and the
    tokens TRL trains on once the row is cut to `max_length` (data/masking.py)."""
    verdict = ChunkVerdict()
    objects = []
    for offset, data in enumerate(chunk):
        obj, reason = parse_line(data)
        if reason:
            verdict.rejected.append((offset, reason))
        else:
            objects.append((offset, obj))
    objects = screen(objects, ROW_SCHEMAS[fmt], "row", lambda item: item[1], verdict)
    chats = [(i, to_messages(obj, fmt), obj) for i, obj in objects]
    chats = screen(chats, CHAT_SCHEMA, "messages", lambda item: item[1], verdict)
    if fmt == "preference":
        chats = screen(
            chats, CHAT_SCHEMA, "messages", lambda x: x[1][:-1] + rejected_turns(x[2]), verdict
        )
    if task.target_format == "json" and chats:
        targets = pd.DataFrame({"target": [m[-1]["content"] for _, m, _ in chats]})
        audit = first_failures(target_schema(task.fields), targets)
        verdict.format_flags.update(audit.values())
        if cfg.format_audit == "quarantine":
            verdict.rejected += [(chats[k][0], reason) for k, reason in audit.items()]
            chats = [item for k, item in enumerate(chats) if k not in audit]
    survivors = []
    for i, messages, obj in chats:
        reason = quality_reason(messages, cfg.quality)
        if reason:
            verdict.rejected.append((i, reason))
        else:
            survivors.append((i, messages, obj))
    if count_tokens is not None and survivors:
        preference = fmt == "preference"
        try:
            lengths = count_tokens([m for _, m, _ in survivors], prompts=not preference)
            if preference:  # DPO sees both answers: the longer one counts; nothing is masked
                rejected = count_tokens(
                    [m[:-1] + rejected_turns(obj) for _, m, obj in survivors], prompts=False
                )
        except RowError as error:  # the template rejects a row: name it by its chunk offset
            raise RowError(survivors[error.index][0], error.reason) from None
        if preference:
            lengths = [
                max(a, b, key=lambda n: n.total) for a, b in zip(lengths, rejected, strict=True)
            ]
        fitting = []
        for item, length in zip(survivors, lengths, strict=True):
            verdict.tokens.append((item[0], length.total))
            trainable = None if preference else trainable_tokens(length, max_length)
            if max_tokens is not None and length.total > max_tokens:
                verdict.rejected.append((item[0], "too_long"))
            elif trainable == 0:
                verdict.rejected.append((item[0], "no_trainable_tokens"))
            else:
                fitting.append(item)
                if trainable is not None:
                    verdict.trainable.append((item[0], trainable))
        survivors = fitting
    for i, messages, _ in survivors:
        target = messages[-1]["content"]
        verdict.survivors.append(i)
        verdict.keys.append(exact_key(messages))
        verdict.scripts.append((dominant_script(prompt_text(messages)), dominant_script(target)))
        verdict.targets.append((target_key(target), abridge(normalise(target), 44, 32)))
        if task.target_format == "json":
            verdict.labels.append(score_labels(target, task.score_fields))
    texts = [content_text(m) for _, m, _ in survivors]
    if cfg.engine == "local":
        verdict.signatures = dedup.signatures(texts, cfg.num_perm)
    else:  # the engine signs them (data/dedup_engine.py)
        verdict.texts = texts
    return verdict


def score_labels(target: str, fields: list[str]) -> tuple[str, ...] | None:
    """The values of a JSON target's score fields, as text (None if it is not an object)."""
    try:
        obj = json.loads(target)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    return tuple(
        value if isinstance(value, str) else json.dumps(value)
        for value in (obj.get(name) for name in fields)
    )


def file_format(file: str, chunk: list[bytes], cfg: CurateParams) -> Format:
    """The format set in curate.formats for this file name, else the one its rows show."""
    if fmt := cfg.formats.get(Path(file).name):
        return fmt
    parsed = (parse_line(data)[0] for data in chunk)
    fmt = detect_format(obj for obj in parsed if obj is not None)
    if fmt is None:
        raise StageError(
            f"{file}: no row is in a known format (chat `messages`, prompt/completion, "
            "instruction/input/output, prompt/chosen/rejected); fix the file or set its "
            "format in curate.formats"
        )
    return fmt
