"""Curation (stage `curate`; the passes and outputs are described in stages/curate.py): parsing
and schema checks per chunk, quality filters, token counts (each row's length and the tokens
TRL trains on, data/masking.py), exact and near-duplicate decisions, and writing every row to
exactly one of kept, quarantined or duplicate.
"""

import json
import multiprocessing
import os
import tempfile
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..errors import StageError
from ..io import iter_lines
from ..models.chat_template import folds_system
from ..params import CurateParams, TaskParams, TrainParams
from ..paths import BASE_MODEL_DIR, QUARANTINE
from . import dedup, dedup_engine
from .chat import to_prompt_completion
from .curate_report import abridge
from .formats import (
    FORMAT_REASONS,
    ROW_SCHEMAS,
    Format,
    detect_format,
    metadata,
    rejected_turns,
    to_messages,
)
from .masking import RowError, TokenCounter, token_counter, trainable_tokens
from .quality import (
    QUALITY_REASONS,
    allowed_scripts,
    dominant_script,
    is_placeholder,
    quality_reason,
)
from .schemas import CHAT_SCHEMA, REASONS, first_failures, target_schema
from .textnorm import content_text, exact_key, normalise, prompt_text, target_key, words

CHUNK_ROWS = 4096
PARALLEL_MIN_BYTES = 8 << 20  # below ~10k rows, starting worker processes costs more than it saves
MAX_WORKERS = 4
TOP_TARGETS = 10

PARSE_REASONS = {
    "not_utf8": "the line is not valid UTF-8",
    "not_json": "the line is not valid JSON",
    "not_json_object": "the line is JSON but not an object",
}
LENGTH_REASONS = {
    "too_long": "the row is longer than curate.max_tokens (default train.max_length) tokens: "
    "truncation would cut the target",
    "no_trainable_tokens": "no assistant token is left to train on once the chat template is "
    "applied and the row is cut to train.max_length (the prompt alone fills it, or the "
    "template renders no answer): TRL would drop the row silently",
}
ALL_REASONS = {**PARSE_REASONS, **FORMAT_REASONS, **REASONS, **QUALITY_REASONS, **LENGTH_REASONS}

RawLine = tuple[str, int, bytes]


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
class Decisions:
    """Pass 1's verdict on every row, by row index (the order rows were read)."""

    formats: dict[str, Format] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)
    duplicate_of: dict[int, tuple[str, int, float]] = field(default_factory=dict)
    group_of: dict[int, int] = field(default_factory=dict)
    tokens: dict[int, int] = field(default_factory=dict)
    trainable: dict[int, int] = field(default_factory=dict)  # SFT rows: tokens TRL trains on
    format_flags: Counter = field(default_factory=Counter)
    ids: dict[int, str] = field(default_factory=dict)  # content-hash id of each unique row
    targets: dict[str, Any] = field(default_factory=dict)  # see `target_summary`
    chat: dict[str, Any] = field(default_factory=dict)  # how rows are rendered (`decide`)
    rows_in: int = 0


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


def target_summary(
    counts: Counter, examples: dict[str, tuple[str, str]], cfg: CurateParams
) -> dict[str, Any]:
    """The distribution of normalised targets and its findings: a placeholder target (N/A,
    unknown, ...) or, when the targets are free text, one target above cfg.max_target_share.
    A label set (few distinct targets, each repeated) is a classifier and never fires, but
    one target for every row is no classifier; a target written at most
    cfg.keep_target_copies times is never a finding."""
    rows = sum(counts.values())
    singletons = sum(1 for n in counts.values() if n == 1)
    free_text = singletons * 2 >= len(counts) > 1
    one_answer = len(counts) == 1
    top = [
        {
            "target": examples[key][1],
            "count": n,
            "share": round(n / rows, 4),
            "placeholder": is_placeholder(examples[key][1]),
        }
        for key, n in counts.most_common(TOP_TARGETS)
    ]
    findings = []
    for key, n in counts.most_common():
        if n <= cfg.keep_target_copies:
            break
        source, text = examples[key]
        if is_placeholder(text) and (free_text or one_answer or not words(text)):
            reason = "placeholder_target"
        elif (free_text or one_answer) and n / rows > cfg.max_target_share:
            reason = "dominant_target"
        else:
            continue
        findings.append(
            {"key": key, "target": text, "reason": reason, "count": n, "share": round(n / rows, 4)}
            | {"example": source}
        )
    return {
        "rows": rows,
        "distinct": len(counts),
        "free_text": free_text,
        "top": top,
        "findings": findings,
        "policy": cfg.dominant_target,
        "keep_copies": cfg.keep_target_copies,
    }


def target_error(finding: dict[str, Any]) -> StageError:
    kind = "a placeholder" if finding["reason"] == "placeholder_target" else "one"
    return StageError(
        f"{finding['example']}: {kind} target {finding['target']!r} answers "
        f"{finding['share']:.0%} of the rows ({finding['count']}); a model trained on it learns "
        "to print it. Fix or drop those rows, or set curate.dominant_target to quarantine "
        "(keep curate.keep_target_copies copies) or warn"
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


class Curator:
    """Pass 1: feed it every file's lines, in order; `finish()` returns the decisions.

    Chunks are screened by `screen_chunk` (in worker processes when given a `pool`) and merged
    here in file order, so exact duplicates always point at the first occurrence. Preference
    pairs are deduplicated among themselves only: a pair whose prompt is also an SFT row's is
    legitimate (the pair says which answer is better), not a copy of that row."""

    def __init__(
        self,
        task: TaskParams,
        curate: CurateParams,
        count_tokens: TokenCounter | None = None,
        max_tokens: int | None = None,
        pool=None,
        max_length: int | None = None,
    ) -> None:
        self.task, self.cfg = task, curate
        self.count_tokens, self.max_tokens = count_tokens, max_tokens
        self.max_length = max_length  # train.max_length: what TRL cuts a row to
        self.pool = pool
        self.decisions = Decisions()
        self.first_of_key: dict[tuple[bool, str], int] = {}  # (is a preference pair, key)
        self.candidates = array("q")
        self.scripts: list[tuple[str | None, str | None]] = []
        self.is_preference: list[bool] = []  # per candidate: its dedup pool
        self.sig_chunks: list[np.ndarray] = []
        self.spill = None  # curate.engine other than local: candidates' texts, for the engine
        if curate.engine != "local":
            dedup_engine.require(curate.engine)
            self.spill_dir = tempfile.TemporaryDirectory(prefix="curate-dedup-")
            self.spill = dedup_engine.TextSpill(Path(self.spill_dir.name))
        self.target_keys: list[str] = []  # per candidate
        self.labels: list[tuple[str, ...] | None] = []  # per candidate, JSON tasks only
        self.target_examples: dict[str, tuple[str, str]] = {}  # key -> (first source, text)

    def add_file(self, file: str, lines: Iterable[tuple[int, bytes]], progress=None) -> None:
        pairs = iter(lines)
        first = list(islice(pairs, CHUNK_ROWS))
        if not first:
            return
        fmt = file_format(file, [data for _, data in first], self.cfg)
        self.decisions.formats[file] = fmt
        numbers: deque[list[int]] = deque()  # line numbers of the chunks in flight

        def chunks() -> Iterator[list[bytes]]:
            for chunk in chain([first], iter(lambda: list(islice(pairs, CHUNK_ROWS)), [])):
                numbers.append([line for line, _ in chunk])
                yield [data for _, data in chunk]

        args = (fmt, self.task, self.cfg)
        limits = (self.max_tokens, self.max_length)
        if self.pool is None:
            verdicts = ((c, screen_chunk(c, *args, self.count_tokens, *limits)) for c in chunks())
        else:
            verdicts = ordered_map(self.pool, chunks(), args + limits)
        try:
            for chunk, verdict in verdicts:
                sources = [f"{file}:{line}" for line in numbers.popleft()]
                self._merge(len(chunk), verdict, fmt == "preference", sources)
                if progress is not None:
                    progress(sum(len(data) + 1 for data in chunk))
        except RowError as error:  # raised in the chunk now first in line
            raise StageError(f"{file}:{numbers[0][error.index]}: {error.reason}") from None

    def _merge(
        self,
        size: int,
        verdict: ChunkVerdict,
        preference: bool = False,
        sources: list[str] | None = None,
    ) -> None:
        d = self.decisions
        start = d.rows_in
        d.rows_in += size
        for offset, reason in verdict.rejected:
            d.reasons[start + offset] = reason
        for offset, length in verdict.tokens:
            d.tokens[start + offset] = length
        for offset, length in verdict.trainable:
            d.trainable[start + offset] = length
        d.format_flags.update(verdict.format_flags)
        unique = []
        for k, (offset, key) in enumerate(zip(verdict.survivors, verdict.keys, strict=True)):
            first = self.first_of_key.setdefault((preference, key), start + offset)
            if first != start + offset:
                d.duplicate_of[start + offset] = ("exact", first, 1.0)
                continue
            unique.append(k)
            d.ids[start + offset] = key[:16]
            self.candidates.append(start + offset)
            self.scripts.append(verdict.scripts[k])
            self.is_preference.append(preference)
            key, text = verdict.targets[k]
            self.target_keys.append(key)
            self.labels.append(verdict.labels[k] if verdict.labels else None)
            if key not in self.target_examples:
                source = sources[offset] if sources else f"row {start + offset + 1}"
                self.target_examples[key] = (source, text)
        if self.spill is None:
            self.sig_chunks.append(verdict.signatures[unique])
        else:
            ids = [start + verdict.survivors[k] for k in unique]
            self.spill.add(ids, [verdict.texts[k] for k in unique])

    def _cluster(self, rows: list[int], sigs: np.ndarray | None) -> None:
        """Near duplicates and groups among `rows` (row indices, `sigs` their signatures, or
        their spilled texts on curate.engine)."""
        cfg = self.cfg
        if self.spill is None:
            clusters = dedup.cluster(sigs, cfg.near_dup_threshold, cfg.group_threshold)
        else:
            clusters = dedup_engine.cluster(
                cfg.engine,
                self.spill.directory,
                np.asarray(rows, dtype=np.int64),
                cfg.num_perm,
                cfg.near_dup_threshold,
                cfg.group_threshold,
            )
        d = self.decisions
        for k, (root, similarity) in clusters.duplicate_of.items():
            d.duplicate_of[rows[k]] = ("near", rows[root], similarity)
        for k, root in enumerate(clusters.group_of):
            if k not in clusters.duplicate_of:
                d.group_of[rows[k]] = rows[root]

    def finish(self) -> Decisions:
        """Drop script outliers, then cluster the survivors into near duplicates and groups."""
        seen = Counter(script for pair in self.scripts for script in pair if script)
        allowed = allowed_scripts(seen, self.cfg.quality.scripts)
        keep = []
        for k, (i, pair) in enumerate(zip(self.candidates, self.scripts, strict=True)):
            if any(script is not None and script not in allowed for script in pair):
                self.decisions.reasons[i] = "charset_outlier"
            else:
                keep.append(k)
        rows = [self.candidates[k] for k in keep]
        sigs = None  # on curate.engine, the engine signs the spilled texts
        if self.spill is not None:
            self.spill.flush()
        elif self.sig_chunks:
            sigs = np.concatenate(self.sig_chunks)[keep]
        else:
            sigs = np.empty((0, self.cfg.num_perm), dtype=np.uint32)
        try:
            for pool in (False, True):  # SFT rows, then preference pairs: never compared
                members = [k for k, kept in enumerate(keep) if self.is_preference[kept] == pool]
                self._cluster([rows[k] for k in members], None if sigs is None else sigs[members])
        finally:
            if self.spill is not None:
                self.spill_dir.cleanup()
        d = self.decisions
        # an exact duplicate of a row that turned out to be a near duplicate points at the
        # row its cluster keeps
        for i, (kind, first, similarity) in list(d.duplicate_of.items()):
            if kind == "exact" and first in d.duplicate_of:
                d.duplicate_of[i] = (kind, d.duplicate_of[first][1], similarity)
        self._check_targets()
        return d

    def _check_targets(self) -> None:
        """Count the normalised targets of the SFT rows that survived everything else, and act
        on a dominant or placeholder target (curate.dominant_target)."""
        d, cfg = self.decisions, self.cfg
        rows = [
            (k, i)
            for k, i in enumerate(self.candidates)
            if not self.is_preference[k] and i not in d.reasons and i not in d.duplicate_of
        ]
        counts = Counter(self.target_keys[k] for k, _ in rows)
        d.targets = target_summary(counts, self.target_examples, cfg)
        if self.task.target_format == "json":
            labels: dict[str, Counter] = {name: Counter() for name in self.task.score_fields}
            for k, _ in rows:
                for name, value in zip(self.task.score_fields, self.labels[k] or (), strict=False):
                    labels[name][value] += 1
            d.targets["labels"] = {name: dict(c.most_common()) for name, c in labels.items()}
        findings = {f["key"]: f for f in d.targets["findings"]}
        if not findings or cfg.dominant_target == "warn":
            return
        if cfg.dominant_target == "fail":
            raise target_error(next(iter(findings.values())))
        seen: Counter = Counter()
        for k, i in rows:
            key = self.target_keys[k]
            if key in findings:
                seen[key] += 1
                if seen[key] > cfg.keep_target_copies:
                    d.reasons[i] = findings[key]["reason"]


# ---------------------------------------------------------------- worker processes

_WORKER: dict[str, Any] = {}


def _init_worker(base_dir: str | None, turns: str) -> None:
    from ..models.loading import load_tokenizer

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the processes are the parallelism
    _WORKER["count"] = token_counter(load_tokenizer(Path(base_dir)), turns) if base_dir else None


def _screen_in_worker(chunk: list[bytes], args: tuple) -> ChunkVerdict:
    fmt, task, cfg, max_tokens, max_length = args
    return screen_chunk(chunk, fmt, task, cfg, _WORKER["count"], max_tokens, max_length)


def ordered_map(pool, chunks: Iterator[list[bytes]], args: tuple, window: int = 4):
    """(chunk, verdict) in input order, with at most `window` chunks in flight, so a large
    file is never read into memory ahead of the workers."""
    pending: deque = deque()
    for chunk in chunks:
        pending.append((chunk, pool.apply_async(_screen_in_worker, (chunk, args))))
        if len(pending) >= window:
            chunk, result = pending.popleft()
            yield chunk, result.get()
    while pending:
        chunk, result = pending.popleft()
        yield chunk, result.get()


def worker_pool(processes: int, base_dir: Path | None, turns: str = "all"):
    """A process pool whose workers each load the tokenizer once (counting `turns`)."""
    import transformers  # noqa: F401  (imported once here, inherited by forked workers)

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return context.Pool(processes, _init_worker, (str(base_dir) if base_dir else None, turns))


@dataclass
class CurateResult:
    """Pass 2's output, in memory (the stage streams the same records to files)."""

    kept: list[dict] = field(default_factory=list)
    preferences: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    decisions: Decisions = field(default_factory=Decisions)

    @property
    def rows_in(self) -> int:
        return self.decisions.rows_in


def emit(lines: Iterable[RawLine], decisions: Decisions) -> Iterator[tuple[str, dict]]:
    """Pass 2: re-read the same lines in the same order and yield (kind, record) for each,
    kind being kept, preference, quarantined or duplicate."""
    referenced = {first for _, first, _ in decisions.duplicate_of.values()}
    sources: dict[int, str] = {}
    targets: dict[int, str] = {}  # normalised target of each row a duplicate points at
    for index, (file, line, data) in enumerate(lines):
        source = f"{file}:{line}"
        fmt = decisions.formats[file]
        reason = decisions.reasons.get(index)
        duplicate = decisions.duplicate_of.get(index)
        # parse the row once, and only when something below reads it
        needs_row = index in referenced or (
            reason is None and (duplicate is None or duplicate[0] == "near")
        )
        if needs_row:
            obj = json.loads(data)
            messages = to_messages(obj, fmt)
        if index in referenced:
            sources[index] = source
            targets[index] = normalise(messages[-1]["content"])
        if reason is not None:
            yield "quarantined", quarantine_record(file, line, data, reason)
            continue
        if duplicate is not None:
            kind, first, similarity = duplicate
            record = {
                "source": source,
                "kind": kind,
                "duplicate_of": sources[first],
                "similarity": round(similarity, 4),
            }
            if kind == "near":  # a near copy that answers differently is a label conflict
                record["same_target"] = normalise(messages[-1]["content"]) == targets[first]
            yield "duplicate", record
            continue
        record: dict[str, Any] = {"id": decisions.ids[index]}
        if fmt == "preference":
            record |= {
                "prompt": messages[:-1],
                "chosen": messages[-1:],
                "rejected": rejected_turns(obj),
            }
        else:
            record |= to_prompt_completion(messages)
        record |= {"source": source, "group": decisions.ids[decisions.group_of.get(index, index)]}
        if index in decisions.tokens:
            record["tokens"] = decisions.tokens[index]
        if index in decisions.trainable:
            record["trainable_tokens"] = decisions.trainable[index]
        if meta := metadata(obj, fmt):
            record["meta"] = meta
        yield ("preference" if fmt == "preference" else "kept"), record


def quarantine_record(file: str, line: int, data: bytes, reason: str) -> dict:
    return {
        "file": file,
        "line": line,
        "reason": reason,
        "detail": ALL_REASONS.get(reason, ""),
        "raw": data.decode("utf-8", errors="replace"),
    }


def curate_rows(
    rows: list[RawLine],
    task: TaskParams,
    curate: CurateParams,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
    max_length: int | None = None,
) -> CurateResult:
    """Both passes in memory, for tests and small data: (file, line, bytes) triples in."""
    curator = Curator(task, curate, count_tokens, max_tokens, max_length=max_length)
    by_file: dict[str, list[tuple[int, bytes]]] = {}
    for file, line, data in rows:
        by_file.setdefault(file, []).append((line, data))
    ordered = [(file, line, data) for file, lines in by_file.items() for line, data in lines]
    for file, lines in by_file.items():
        curator.add_file(file, lines)
    result = CurateResult(decisions=curator.finish())
    buckets = {
        "kept": result.kept,
        "preference": result.preferences,
        "quarantined": result.quarantined,
        "duplicate": result.duplicates,
    }
    for kind, record in emit(ordered, result.decisions):
        buckets[kind].append(record)
    return result


def raw_files(raw_dir: Path) -> list[Path]:
    files = sorted(raw_dir.glob("*.jsonl"))
    if not files:
        raise StageError(f"no *.jsonl files in {raw_dir}/: add your training data there")
    empty = [str(path) for path in files if not any(True for _ in iter_lines(path))]
    if empty:
        raise StageError(f"{', '.join(empty)}: no rows (the file is empty); remove or fill it")
    return files


def read_raw(raw_dir: Path) -> list[RawLine]:
    """Every non-blank line of every raw file, in file then line order."""
    return [
        (str(path), line, data) for path in raw_files(raw_dir) for line, data in iter_lines(path)
    ]


class JsonlWriters:
    """One open JSONL file per output kind, written as pass 2 streams."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.handles = {}
        for kind, path in paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handles[kind] = path.open("w", encoding="utf-8")

    def write(self, kind: str, record: dict) -> None:
        self.handles[kind].write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def stream_raw(files: list[Path]) -> Iterator[RawLine]:
    for path in files:
        for line, data in iter_lines(path):
            yield str(path), line, data


def check_files(files: list[Path], curator: Curator, total_bytes: int) -> Decisions:
    with tqdm(total=total_bytes, unit="B", unit_scale=True, desc="curate: check") as bar:
        for path in files:
            curator.add_file(str(path), iter_lines(path), bar.update)
    return curator.finish()


def decide(
    files: list[Path], task: TaskParams, cfg: CurateParams, max_tokens: int, train: TrainParams
) -> Decisions:
    """Pass 1 over the raw files (every row kept, quarantined or a duplicate), in worker
    processes when the input is large enough to pay for starting them. Rows are counted as
    training renders and masks them: cut to train.max_length, train.assistant_turns trained."""
    from ..models.loading import load_tokenizer

    total = sum(path.stat().st_size for path in files)
    processes = min(os.cpu_count() or 1, MAX_WORKERS)
    turns, max_length = train.assistant_turns, train.max_length
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    if total >= PARALLEL_MIN_BYTES and processes > 1:
        with worker_pool(processes, BASE_MODEL_DIR, turns) as pool:
            curator = Curator(task, cfg, None, max_tokens, pool, max_length)
            decisions = check_files(files, curator, total)
    else:
        count = token_counter(tokenizer, turns)
        curator = Curator(task, cfg, count, max_tokens, max_length=max_length)
        decisions = check_files(files, curator, total)
    decisions.chat = {"assistant_turns": turns, "system_folded": folds_system(tokenizer)}
    return decisions


def write_rows(
    files: list[Path],
    decisions: Decisions,
    outputs: dict[str, Path],
    observe: Callable[[str, dict], None],
) -> None:
    """Pass 2: stream the raw files again and write each row to the output of its kind
    (kept, preference, quarantined, duplicate); `observe` sees every record (the report)."""
    writers = JsonlWriters(outputs)
    try:
        for kind, record in emit(stream_raw(files), decisions):
            writers.write(kind, record)
            observe(kind, record)
    finally:
        writers.close()


def check_curated(report: dict, max_reject_fraction: float) -> None:
    """Fail instead of training on scraps: too many rows rejected, or none left to train on."""
    if report["reject_fraction"] > max_reject_fraction:
        reason, n = max(report["reasons"].items(), key=lambda item: item[1])
        raise StageError(
            f"{report['reject_fraction']:.0%} of rows were rejected, above "
            f"curate.max_reject_fraction={max_reject_fraction} (most: {reason}, {n} rows); "
            f"see {QUARANTINE} for each row's reason"
        )
    if report["kept_sft"] == 0:
        raise StageError(f"no training rows survived curation; see {QUARANTINE}")
