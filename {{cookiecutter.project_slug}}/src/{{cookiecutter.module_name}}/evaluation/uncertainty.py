"""How far to trust a score measured on a few dozen items: seeded percentile-bootstrap
intervals of a mean, of a paired difference (two models on the same items) and of an
unpaired one (two different item sets), and McNemar's exact test for paired 0/1 items.

Pure functions of number vectors; which items and which metric is the caller's business
(selection/comparison.py). Every bootstrap draws from its own generator seeded with `seed`,
so a result does not depend on what was computed before it."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# resampled means held in memory at once (samples x items), in chunks of about this size
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A mean (or a difference of means) over `n` items and its bootstrap interval."""

    value: float
    lo: float
    hi: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def _resampled_means(values: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """The mean of `samples` resamples (with replacement, same size) of `values`."""
    n = len(values)
    chunk = max(1, _CHUNK // n)
    return np.concatenate(
        [
            values[rng.integers(0, n, size=(min(chunk, samples - start), n))].mean(axis=1)
            for start in range(0, samples, chunk)
        ]
    )


def _bounds(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(lo), float(hi)


def _interval(value: float, lo: float, hi: float, n: int) -> Interval:
    # the percentile interval of a mean contains the mean; rounding must not undo that
    lo, hi = min(lo, value), max(hi, value)
    return Interval(round(value, 4), round(lo, 4), round(hi, 4), n)


def bootstrap_mean(
    values: Sequence[float], *, samples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """The mean of `values` with its percentile-bootstrap interval. No values: 0 with a
    zero-width interval and n = 0 (say "no items", not "certain")."""
    data = np.asarray(values, dtype=float)
    if not len(data):
        return Interval(0.0, 0.0, 0.0, 0)
    means = _resampled_means(data, samples, np.random.default_rng(seed))
    return _interval(float(data.mean()), *_bounds(means, confidence), len(data))


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """mean(a) - mean(b) for two models scored on the same items (a[i] and b[i] are one
    item): the items are resampled, each keeping its pair, so item difficulty cancels."""
    if len(a) != len(b):
        raise ValueError(f"paired vectors differ in length: {len(a)} vs {len(b)}")
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return bootstrap_mean(diffs, samples=samples, confidence=confidence, seed=seed)


def unpaired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """mean(a) - mean(b) for two different item sets (e.g. test vs val), each resampled on
    its own. n is the smaller set's size."""
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not (len(first) and len(second)):
        return Interval(0.0, 0.0, 0.0, 0)
    rng = np.random.default_rng(seed)
    means = _resampled_means(first, samples, rng) - _resampled_means(second, samples, rng)
    value = float(first.mean() - second.mean())
    return _interval(value, *_bounds(means, confidence), min(len(first), len(second)))


def mcnemar_p(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes: under "no difference" the
    items only one model gets right split 50/50 between the two (an exact binomial test on
    the discordant pairs). 1.0 when no item is discordant."""
    if len(a) != len(b):
        raise ValueError(f"paired vectors differ in length: {len(a)} vs {len(b)}")
    only_a = sum(bool(x) and not bool(y) for x, y in zip(a, b, strict=True))
    only_b = sum(bool(y) and not bool(x) for x, y in zip(a, b, strict=True))
    discordant = only_a + only_b
    if not discordant:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**discordant)
