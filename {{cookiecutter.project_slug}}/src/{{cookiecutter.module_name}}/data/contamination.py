"""Contamination check: does a training row contain (most of) an evaluation item?

An item's overlap with a training row is the share of the item's word n-grams that occur in
the row (PaLM's definition, per row so the offending training row can be named and removed).
An item shorter than n words counts as one n-gram: it overlaps only when it occurs whole.
"""

from collections import Counter
from dataclasses import dataclass

from .textnorm import ngrams, words


@dataclass(frozen=True)
class Overlap:
    item: int
    share: float


class OverlapIndex:
    """The n-grams of every evaluation item, for fast lookups of training rows."""

    def __init__(self, texts: list[str], n: int) -> None:
        self.n = n
        self.sizes: list[int] = []
        # n-gram -> items, for items of at least n words; by length for the shorter ones
        self.tables: dict[int, dict[tuple[str, ...], list[int]]] = {}
        for item, text in enumerate(texts):
            tokens = words(text)
            grams = set(ngrams(tokens, n))
            self.sizes.append(len(grams))
            table = self.tables.setdefault(min(len(tokens), n), {})
            for gram in grams:
                table.setdefault(gram, []).append(item)

    def overlaps(self, text: str, min_share: float) -> list[Overlap]:
        """Items whose overlap with `text` is at least `min_share`, largest first."""
        tokens = words(text)
        hits: Counter = Counter()
        for length, table in self.tables.items():
            if length == 0 or len(tokens) < length:
                continue
            for gram in set(ngrams(tokens, length)):
                for item in table.get(gram, ()):
                    hits[item] += 1
        found = [
            Overlap(item, round(count / self.sizes[item], 4))
            for item, count in hits.items()
            if count / self.sizes[item] >= min_share
        ]
        return sorted(found, key=lambda overlap: (-overlap.share, overlap.item))
