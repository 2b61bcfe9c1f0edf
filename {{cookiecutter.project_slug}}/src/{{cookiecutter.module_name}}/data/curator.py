"""Pass 1 of curate over every file: screen the chunks (data/screening.py), merge their
verdicts in file order, then decide exact and near duplicates, script outliers and the
target policy for the whole data set."""

import tempfile
from array import array
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from pathlib import Path

import numpy as np

from ..errors import StageError
from ..params import CurateParams, TaskParams
from . import dedup, dedup_engine
from .decisions import Decisions
from .masking import RowError, TokenCounter
from .quality import allowed_scripts
from .screening import ChunkVerdict, file_format, screen_chunk
from .targets import target_error, target_summary
from .workers import ordered_map

CHUNK_ROWS = 4096


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
