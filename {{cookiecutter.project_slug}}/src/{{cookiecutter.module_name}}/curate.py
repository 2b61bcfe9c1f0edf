"""Stage `curate`: every raw row is kept, quarantined with a reason, or removed as a duplicate.

Two streaming passes over data/raw/*.jsonl, so memory holds per-row decisions and MinHash
signatures, never the data set's text:
1. decide: parse, check the file format's schema and the chat schema, audit JSON targets,
   apply the quality filters, count tokens with the base model's tokenizer, drop exact
   duplicates, and sign each surviving row for near-duplicate clustering;
2. write: the kept rows (TRL prompt/completion form) to data/curated/, every rejected line
   verbatim with file, line and reason to data/quarantine.jsonl, every duplicate with the row it
   duplicates to data/curated/duplicates.jsonl, and counts to reports/curate.json, where
   rows_in == kept + quarantined + duplicates always holds.
"""

import json
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import dedup
from .cli import StageError, run_stage
from .formats import (
    FORMAT_REASONS,
    ROW_SCHEMAS,
    Format,
    detect_format,
    metadata,
    rejected_turns,
    to_messages,
)
from .formatting import Messages, to_prompt_completion
from .jsonio import iter_lines, write_json
from .params import CurateParams, TaskParams, load_params
from .paths import (
    CURATE_REPORT,
    CURATED,
    DUPLICATES,
    PREFERENCES,
    QUARANTINE,
    RAW_DIR,
    TOKEN_PLOT,
    TOKEN_PLOT_DATA,
)
from .quality import QUALITY_REASONS, allowed_scripts, dominant_script, quality_reason
from .schemas import CHAT_SCHEMA, REASONS, first_failures, target_schema
from .textnorm import content_text, exact_key, prompt_text

CHUNK_ROWS = 4096
EXAMPLES_PER_REASON = 3
CLUSTER_EXAMPLES = 5

PARSE_REASONS = {
    "not_utf8": "the line is not valid UTF-8",
    "not_json": "the line is not valid JSON",
    "not_json_object": "the line is JSON but not an object",
    "too_long": "the row is longer than curate.max_tokens (default train.max_length) tokens: "
    "truncation would cut the target",
}
ALL_REASONS = {**PARSE_REASONS, **FORMAT_REASONS, **REASONS, **QUALITY_REASONS}

TokenCounter = Callable[[list[Messages]], list[int]]
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
    format_flags: Counter = field(default_factory=Counter)
    rows_in: int = 0


class Curator:
    """Pass 1: feed it every file's lines, in order; `finish()` returns the decisions."""

    def __init__(
        self,
        task: TaskParams,
        curate: CurateParams,
        count_tokens: TokenCounter | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.task, self.cfg = task, curate
        self.count_tokens, self.max_tokens = count_tokens, max_tokens
        self.decisions = Decisions()
        self.first_of_key: dict[str, int] = {}
        self.candidates = array("q")
        self.scripts: list[tuple[str | None, str | None]] = []  # (prompt, target)
        self.sig_chunks: list[np.ndarray] = []

    def add_file(self, file: str, lines: Iterable[tuple[int, bytes]], progress=None) -> None:
        iterator = iter(lines)
        while chunk := list(islice(iterator, CHUNK_ROWS)):
            self._add_chunk(file, chunk)
            if progress is not None:
                progress(sum(len(data) + 1 for _, data in chunk))

    def _reject(self, index: int, reason: str) -> None:
        self.decisions.reasons[index] = reason

    def _add_chunk(self, file: str, chunk: list[tuple[int, bytes]]) -> None:
        decisions = self.decisions
        start = decisions.rows_in
        decisions.rows_in += len(chunk)
        objects: list[tuple[int, dict]] = []
        for offset, (_, data) in enumerate(chunk):
            obj, reason = parse_line(data)
            if reason:
                self._reject(start + offset, reason)
            else:
                objects.append((start + offset, obj))
        fmt = decisions.formats.get(file) or self.cfg.formats.get(Path(file).name)
        if fmt is None:
            fmt = detect_format(obj for _, obj in objects)
            if fmt is None:
                raise StageError(
                    f"{file}: no row is in a known format (chat `messages`, prompt/completion, "
                    "instruction/input/output, prompt/chosen/rejected); fix the file or set "
                    "its format in curate.formats"
                )
        decisions.formats[file] = fmt
        objects = self._screen(objects, ROW_SCHEMAS[fmt], "row", lambda item: item[1])
        chats = [(i, to_messages(obj, fmt), obj) for i, obj in objects]
        chats = self._screen(chats, CHAT_SCHEMA, "messages", lambda item: item[1])
        if fmt == "preference":
            chats = self._screen(
                chats, CHAT_SCHEMA, "messages", lambda item: item[1][:-1] + rejected_turns(item[2])
            )
        if self.task.target_format == "json":
            audit = first_failures(
                target_schema(self.task.fields),
                pd.DataFrame({"target": [m[-1]["content"] for _, m, _ in chats]}),
            )
            decisions.format_flags.update(audit.values())
            if self.cfg.format_audit == "quarantine":
                for position, reason in audit.items():
                    self._reject(chats[position][0], reason)
                chats = [item for k, item in enumerate(chats) if k not in audit]
        survivors = []
        for i, messages, obj in chats:
            reason = quality_reason(messages, self.cfg.quality)
            if reason:
                self._reject(i, reason)
            else:
                survivors.append((i, messages, obj))
        survivors = self._check_length(survivors, fmt)
        texts = []
        for i, messages, _ in survivors:
            key = exact_key(messages)
            first = self.first_of_key.setdefault(key, i)
            if first != i:
                decisions.duplicate_of[i] = ("exact", first, 1.0)
                continue
            self.candidates.append(i)
            self.scripts.append(
                (dominant_script(prompt_text(messages)), dominant_script(messages[-1]["content"]))
            )
            texts.append(content_text(messages))
        self.sig_chunks.append(dedup.signatures(texts, self.cfg.num_perm))

    def _screen(self, items: list, schema, column: str, value_of) -> list:
        """Reject the items (tuples starting with the row index) whose value fails `schema`,
        under the first failing check; return the rest."""
        if not items:
            return items
        frame = pd.DataFrame({column: [value_of(item) for item in items]})
        failures = first_failures(schema, frame)
        for position, reason in failures.items():
            self._reject(items[position][0], reason)
        return [item for k, item in enumerate(items) if k not in failures]

    def _check_length(self, rows: list, fmt: Format) -> list:
        if self.count_tokens is None or not rows:
            return rows
        lengths = self.count_tokens([m for _, m, _ in rows])
        if fmt == "preference":
            rejected = self.count_tokens([m[:-1] + rejected_turns(obj) for _, m, obj in rows])
            lengths = [max(a, b) for a, b in zip(lengths, rejected, strict=True)]
        kept = []
        for (i, messages, obj), length in zip(rows, lengths, strict=True):
            self.decisions.tokens[i] = length
            if self.max_tokens is not None and length > self.max_tokens:
                self._reject(i, "too_long")
            else:
                kept.append((i, messages, obj))
        return kept

    def finish(self, progress=None) -> Decisions:
        """Drop script outliers, then cluster the survivors into near duplicates and groups."""
        seen = Counter(script for pair in self.scripts for script in pair if script)
        allowed = allowed_scripts(seen, self.cfg.quality.scripts)
        sigs = np.concatenate(self.sig_chunks) if self.sig_chunks else np.empty((0, 1))
        keep = []
        for k, (i, pair) in enumerate(zip(self.candidates, self.scripts, strict=True)):
            if any(script is not None and script not in allowed for script in pair):
                self._reject(i, "charset_outlier")
            else:
                keep.append(k)
        rows = [self.candidates[k] for k in keep]
        clusters = dedup.cluster(
            sigs[keep], self.cfg.near_dup_threshold, self.cfg.group_threshold, progress
        )
        for k, (root, similarity) in clusters.duplicate_of.items():
            self.decisions.duplicate_of[rows[k]] = ("near", rows[root], similarity)
        for k, root in enumerate(clusters.group_of):
            if k not in clusters.duplicate_of:
                self.decisions.group_of[rows[k]] = rows[root]
        return self.decisions


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
    ids: dict[int, str] = {}
    for index, (file, line, data) in enumerate(lines):
        source = f"{file}:{line}"
        if index in referenced:
            sources[index] = source
        reason = decisions.reasons.get(index)
        if reason is not None:
            yield "quarantined", quarantine_record(file, line, data, reason)
            continue
        duplicate = decisions.duplicate_of.get(index)
        if duplicate is not None:
            kind, first, similarity = duplicate
            yield (
                "duplicate",
                {
                    "source": source,
                    "kind": kind,
                    "duplicate_of": sources[first],
                    "similarity": round(similarity, 4),
                },
            )
            continue
        fmt = decisions.formats[file]
        obj = json.loads(data)
        messages = to_messages(obj, fmt)
        ids[index] = exact_key(messages)[:16]
        record: dict[str, Any] = {"id": ids[index]}
        if fmt == "preference":
            record |= {
                "prompt": messages[:-1],
                "chosen": messages[-1:],
                "rejected": rejected_turns(obj),
            }
        else:
            record |= to_prompt_completion(messages)
        record |= {"source": source, "group": ids[decisions.group_of.get(index, index)]}
        if index in decisions.tokens:
            record["tokens"] = decisions.tokens[index]
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
) -> CurateResult:
    """Both passes in memory, for tests and small data: (file, line, bytes) triples in."""
    curator = Curator(task, curate, count_tokens, max_tokens)
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


def size_advice(n_rows: int) -> str:
    """The seeds' dataset-size rule of thumb."""
    if n_rows < 100:
        return "under 100 examples: consider few-shot prompting instead of fine-tuning"
    if n_rows < 1000:
        return "100-1,000 examples: LoRA SFT works; watch val loss for overfitting"
    if n_rows < 10000:
        return "1,000-10,000 examples: the sweet spot for LoRA SFT"
    return "10,000+ examples: consider SFT + DPO or full fine-tuning"


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


def token_histogram(lengths: list[int], max_tokens: int | None, bins: int = 16) -> list[dict]:
    """Rows per token-length bin, for `dvc plots`; bins are max_tokens/bins wide."""
    if not lengths:
        return []
    width = max(1, -(-(max_tokens or max(lengths)) // bins))
    counts = Counter(length // width for length in lengths)
    return [
        {
            "tokens": f"{b * width:>5}-{(b + 1) * width - 1}",
            "rows": counts.get(b, 0),
            "over_max": bool(max_tokens is not None and b * width >= max_tokens),
        }
        for b in range(max(counts) + 1)
    ]


def token_stats(lengths: list[int], max_tokens: int | None) -> dict[str, Any]:
    if not lengths:
        return {"rows": 0}
    values = np.asarray(lengths)
    over = int((values > max_tokens).sum()) if max_tokens else 0
    return {
        "rows": len(lengths),
        "max_tokens": max_tokens,
        "mean": round(float(values.mean()), 1),
        "p50": int(np.percentile(values, 50)),
        "p95": int(np.percentile(values, 95)),
        "max": int(values.max()),
        "over_max": over,
        "over_max_share": round(over / len(lengths), 4),
    }


def plot_token_lengths(lengths: list[int], max_tokens: int | None, path: Path) -> None:
    """A histogram of row lengths with the max_length line: what truncation would cut."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    ax.hist(lengths, bins=40, color="#4C72B0")
    if max_tokens:
        ax.axvline(max_tokens, color="#C44E52", linestyle="--", label=f"max_tokens {max_tokens}")
        ax.legend()
    ax.set_xlabel("tokens per row (chat template applied)")
    ax.set_ylabel("rows")
    ax.set_title("Token lengths of valid rows")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


class ReportBuilder:
    """Counts and examples collected while pass 2 streams the records out."""

    def __init__(self, decisions: Decisions) -> None:
        self.decisions = decisions
        self.counts: Counter = Counter()
        self.reasons: Counter = Counter()
        self.examples: dict[str, list[dict]] = {}
        self.clusters: dict[str, dict] = {}
        self.snippets: dict[str, str] = {}

    def add(self, kind: str, record: dict) -> None:
        self.counts[kind] += 1
        if kind == "quarantined":
            self.reasons[record["reason"]] += 1
            shown = self.examples.setdefault(record["reason"], [])
            if len(shown) < EXAMPLES_PER_REASON:
                shown.append(
                    {k: record[k] for k in ("file", "line")} | {"raw": abridge(record["raw"])}
                )
        elif kind in ("kept", "preference"):
            if len(self.snippets) < 10000:
                self.snippets[record["source"]] = snippet(record)
        elif kind == "duplicate" and record["kind"] == "near":
            first = record["duplicate_of"]
            if first in self.clusters or len(self.clusters) < CLUSTER_EXAMPLES:
                cluster = self.clusters.setdefault(
                    first, {"kept": first, "text": self.snippets.get(first, ""), "removed": []}
                )
                if len(cluster["removed"]) < 3:
                    cluster["removed"].append(
                        {"source": record["source"], "similarity": record["similarity"]}
                    )

    def report(self, max_tokens: int | None, max_reject_fraction: float) -> dict[str, Any]:
        d = self.decisions
        dup_kinds = Counter(kind for kind, _, _ in d.duplicate_of.values())
        kept = self.counts["kept"] + self.counts["preference"]
        quarantined = self.counts["quarantined"]
        lengths = list(d.tokens.values())
        return {
            "rows_in": d.rows_in,
            "kept": kept,
            "kept_sft": self.counts["kept"],
            "kept_preference": self.counts["preference"],
            "quarantined": quarantined,
            "duplicates": {"exact": dup_kinds["exact"], "near": dup_kinds["near"]},
            "reasons": dict(sorted(self.reasons.items())),
            "reason_details": {code: ALL_REASONS.get(code, "") for code in sorted(self.reasons)},
            "reject_fraction": round(quarantined / max(d.rows_in, 1), 4),
            "max_reject_fraction": max_reject_fraction,
            "formats": dict(sorted(d.formats.items())),
            "format_audit": dict(sorted(d.format_flags.items())),
            "groups": len(set(d.group_of.values())),
            "tokens": token_stats(lengths, max_tokens),
            "size_advice": size_advice(self.counts["kept"]),
            "examples": self.examples,
            "near_duplicate_examples": list(self.clusters.values()),
        }


def abridge(text: str, head: int = 60, tail: int = 140) -> str:
    """Start and end of a long line: rows share their start (the system prompt) and usually
    go wrong at the end (the target)."""
    return text if len(text) <= head + tail + 5 else f"{text[:head]} ... {text[-tail:]}"


def snippet(record: dict, limit: int = 160) -> str:
    turns = record["prompt"] + record.get("completion", record.get("chosen", []))
    text = " | ".join(m["content"] for m in turns if m["role"] != "system")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def tokenizer_counter() -> TokenCounter:
    """Token counts of rows as TRL will see them: the chat template, then the tokenizer."""
    from .modeling import load_tokenizer

    tokenizer = load_tokenizer()

    def count(chats: list[Messages]) -> list[int]:
        texts = tokenizer.apply_chat_template(chats, tokenize=False)
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    return count


def main() -> None:
    params = load_params()
    cfg = params.curate
    max_tokens = cfg.max_tokens or params.train.max_length
    files = raw_files(RAW_DIR)
    curator = Curator(params.task, cfg, tokenizer_counter(), max_tokens)
    total = sum(path.stat().st_size for path in files)
    with tqdm(total=total, unit="B", unit_scale=True, desc="curate: check") as bar:
        for path in files:
            curator.add_file(str(path), iter_lines(path), bar.update)
    with tqdm(total=len(curator.candidates), unit="row", desc="curate: near-dups") as bar:
        decisions = curator.finish(bar.update)

    builder = ReportBuilder(decisions)
    writers = JsonlWriters(
        {
            "kept": CURATED,
            "preference": PREFERENCES,
            "quarantined": QUARANTINE,
            "duplicate": DUPLICATES,
        }
    )
    try:
        for kind, record in emit(stream_raw(files), decisions):
            writers.write(kind, record)
            builder.add(kind, record)
    finally:
        writers.close()
    report = builder.report(max_tokens, cfg.max_reject_fraction)
    write_json(CURATE_REPORT, report)
    write_json(TOKEN_PLOT_DATA, token_histogram(list(decisions.tokens.values()), max_tokens))
    plot_token_lengths(list(decisions.tokens.values()), max_tokens, TOKEN_PLOT)
    dups = report["duplicates"]
    print(
        f"curate: {report['rows_in']} rows in -> {report['kept']} kept, "
        f"{report['quarantined']} quarantined {report['reasons']}, "
        f"{dups['exact']} exact + {dups['near']} near duplicates removed\n"
        f"curate: {report['size_advice']}"
    )
    if report["reject_fraction"] > cfg.max_reject_fraction:
        raise StageError(
            f"{report['reject_fraction']:.0%} of rows were rejected, above "
            f"curate.max_reject_fraction={cfg.max_reject_fraction}; "
            f"see {QUARANTINE} for each row's reason"
        )
    if report["kept_sft"] == 0:
        raise StageError(f"no training rows survived curation; see {QUARANTINE}")


if __name__ == "__main__":
    run_stage("curate", main)
