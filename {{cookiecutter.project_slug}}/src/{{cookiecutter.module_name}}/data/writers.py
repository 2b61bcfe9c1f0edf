"""Pass 2 of curate: stream the raw lines again and write each row, as pass 1 decided, to the
output of its kind: kept (TRL prompt/completion form), preference, quarantined (the verbatim
line with file, line and reason) or duplicate (with the row it duplicates)."""

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..io import iter_lines
from .chat import to_prompt_completion
from .decisions import Decisions
from .formats import metadata, rejected_turns, to_messages
from .reasons import ALL_REASONS
from .textnorm import normalise

RawLine = tuple[str, int, bytes]


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
