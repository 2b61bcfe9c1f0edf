"""Stage `curate`: validate raw rows, quarantine the bad ones with a reason, drop duplicates.

Reads every `data/raw/*.jsonl` (chat `messages` rows or `prompt`/`completion` rows), writes
the clean rows in TRL's conversational prompt/completion form, every rejected row verbatim to
data/quarantine.jsonl with file, line and reason, and counts to reports/curate.json, where
rows_in == kept + quarantined + duplicates always holds.
"""

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .cli import StageError, run_stage
from .formatting import to_prompt_completion
from .jsonio import iter_lines, write_json, write_jsonl
from .params import load_params
from .paths import CURATE_REPORT, CURATED, QUARANTINE, RAW_DIR
from .schemas import CHAT_SCHEMA, REASONS, first_failures, target_schema

WHITESPACE = re.compile(r"\s+")


@dataclass
class RawRow:
    file: str
    line: int
    raw: str
    messages: Any = None


@dataclass
class CurateResult:
    kept: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    duplicates: int = 0
    rows_in: int = 0


def decode_line(file: str, line: int, data: bytes) -> tuple[RawRow, str | None]:
    """Parse one raw line into a RawRow holding chat messages, or give the reason it can't be."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return RawRow(file, line, data.decode("utf-8", errors="replace")), "not_utf8"
    row = RawRow(file, line, text)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return row, "not_json"
    if not isinstance(obj, dict):
        return row, "not_json_object"
    if "messages" in obj:
        row.messages = obj["messages"]
    elif "prompt" in obj and "completion" in obj:
        if not all(isinstance(obj[k], str) and obj[k].strip() for k in ("prompt", "completion")):
            return row, "empty_prompt_or_completion"
        row.messages = [
            {"role": "user", "content": obj["prompt"]},
            {"role": "assistant", "content": obj["completion"]},
        ]
    else:
        return row, "unknown_format"
    return row, None


def normalised_key(messages: list[dict]) -> str:
    """Exact-duplicate key: roles and contents, case-folded and whitespace-collapsed."""
    text = "\x1e".join(
        m["role"] + "\x1f" + WHITESPACE.sub(" ", m["content"]).strip().casefold() for m in messages
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


PARSE_REASONS = {
    "not_utf8": "the line is not valid UTF-8",
    "not_json": "the line is not valid JSON",
    "not_json_object": "the line is JSON but not an object",
    "unknown_format": "neither a `messages` row nor a `prompt`/`completion` row",
    "empty_prompt_or_completion": "prompt or completion is missing, empty or not a string",
    "target_too_short": "the target is shorter than curate.min_completion_chars",
}


def quarantine_record(row: RawRow, reason: str) -> dict:
    detail = PARSE_REASONS.get(reason) or REASONS.get(reason, "")
    return {"file": row.file, "line": row.line, "reason": reason, "detail": detail, "raw": row.raw}


def curate_rows(
    rows: list[tuple[str, int, bytes]], target_format: str, fields: list[str], min_chars: int
) -> CurateResult:
    """Pure core of the stage: raw (file, line, bytes) triples in, kept/quarantined rows out."""
    result = CurateResult(rows_in=len(rows))
    parsed: list[RawRow] = []
    for file, line, data in rows:
        row, reason = decode_line(file, line, data)
        if reason:
            result.quarantined.append(quarantine_record(row, reason))
        else:
            parsed.append(row)

    frame = pd.DataFrame({"messages": [row.messages for row in parsed]})
    reasons = first_failures(CHAT_SCHEMA, frame)
    valid = [row for i, row in enumerate(parsed) if i not in reasons]
    texts = [row.messages[-1]["content"] for row in valid]
    if target_format == "json":
        target_reasons = first_failures(target_schema(fields), pd.DataFrame({"target": texts}))
    else:
        target_reasons = {
            i: "target_too_short" for i, text in enumerate(texts) if len(text.strip()) < min_chars
        }
    for i, row in enumerate(parsed):
        if i in reasons:
            result.quarantined.append(quarantine_record(row, reasons[i]))

    seen: set[str] = set()
    for i, row in enumerate(valid):
        if i in target_reasons:
            result.quarantined.append(quarantine_record(row, target_reasons[i]))
            continue
        key = normalised_key(row.messages)
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        record = to_prompt_completion(row.messages)
        result.kept.append({"id": key[:16], **record, "source": f"{row.file}:{row.line}"})
    result.quarantined.sort(key=lambda record: (record["file"], record["line"]))
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


def read_raw(raw_dir: Path) -> list[tuple[str, int, bytes]]:
    files = sorted(raw_dir.glob("*.jsonl"))
    if not files:
        raise StageError(f"no *.jsonl files in {raw_dir}/: add your training data there")
    rows = [(str(path), line, data) for path in files for line, data in iter_lines(path)]
    if not rows:
        raise StageError(f"{', '.join(map(str, files))}: no rows (the files are empty)")
    return rows


def build_report(result: CurateResult) -> dict:
    return {
        "rows_in": result.rows_in,
        "kept": len(result.kept),
        "quarantined": len(result.quarantined),
        "duplicates": result.duplicates,
        "reasons": dict(sorted(Counter(r["reason"] for r in result.quarantined).items())),
        "reject_fraction": round(len(result.quarantined) / max(result.rows_in, 1), 4),
        "size_advice": size_advice(len(result.kept)),
    }


def main() -> None:
    params = load_params()
    task = params.task
    result = curate_rows(
        read_raw(RAW_DIR), task.target_format, task.fields, params.curate.min_completion_chars
    )
    write_jsonl(CURATED, result.kept)
    write_jsonl(QUARANTINE, result.quarantined)
    report = build_report(result)
    write_json(CURATE_REPORT, report)
    print(
        f"curate: {report['rows_in']} rows in -> {report['kept']} kept, "
        f"{report['quarantined']} quarantined {report['reasons']}, "
        f"{report['duplicates']} duplicates removed\ncurate: {report['size_advice']}"
    )
    if report["reject_fraction"] > params.curate.max_reject_fraction:
        raise StageError(
            f"{report['reject_fraction']:.0%} of rows were rejected, above "
            f"curate.max_reject_fraction={params.curate.max_reject_fraction}; "
            f"see {QUARANTINE} for each row's reason"
        )


if __name__ == "__main__":
    run_stage("curate", main)
