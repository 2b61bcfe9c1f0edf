"""Small, strict readers and writers for the JSON files the stages exchange."""

import functools
import hashlib
import json
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import StageError


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file written by this pipeline; a bad line is an error naming file and line."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise StageError(f"{path}:{line_number}: not valid JSON ({error.msg})") from error
    return rows


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSONL (parents created); returns the number of rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_json(path: Path, payload: Any) -> None:
    """Write pretty, key-sorted JSON so reports diff cleanly across experiments."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_json_at(rev: str, path: Path) -> Any | None:
    """JSON file `path` as committed in git revision `rev` (an experiment's commit), or None
    when that commit does not have it."""
    command = ["git", "show", f"{rev}:{path.as_posix()}"]
    shown = subprocess.run(command, capture_output=True, text=True)
    return json.loads(shown.stdout) if shown.returncode == 0 else None


def content_hash(payload: Any) -> str:
    """Stable SHA-256 of a JSON-serialisable value (key order does not matter)."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes (see file_digest for files read more than once a run)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """file_hash, computed once per process for an unchanged file (same size and mtime): eval
    hashes the base's weights for every model and each checkpoint both to check the manifest
    and to key the generation cache."""
    stat = path.stat()
    return _file_digest(path.resolve(), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.cache
def _file_digest(path: Path, inode: int, size: int, mtime_ns: int) -> str:
    return file_hash(path)


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, raw bytes) for every non-blank line, without decoding."""
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                yield line_number, line.rstrip(b"\r\n")
