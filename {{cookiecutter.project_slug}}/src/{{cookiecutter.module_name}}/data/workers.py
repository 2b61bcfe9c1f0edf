"""Worker processes for pass 1: each loads the tokenizer once and screens chunks
(data/screening.py); results come back in input order."""

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .masking import token_counter
from .screening import ChunkVerdict, screen_chunk

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
