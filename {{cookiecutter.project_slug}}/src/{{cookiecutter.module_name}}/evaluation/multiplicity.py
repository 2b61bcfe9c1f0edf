"""One model against several others on the same items: a paired p-value per comparison and
Holm's correction for having made several.

Look at enough comparisons and one of them comes out "significant" by luck: at 0.05, one in
twenty when nothing differs. Holm's step-down method (Holm 1979) adjusts the p-values so that
the chance of calling any true "no difference" a difference stays under the level across the
whole family, and it never rejects less than Bonferroni does. Pure functions of numbers."""

from collections.abc import Sequence

import numpy as np

from .uncertainty import mcnemar_p

# at most this many non-zero paired differences: every sign pattern is enumerated (2^16)
EXACT_MAX = 16
# sign patterns held in memory at once (patterns x items), in chunks of about this size
_CHUNK = 1 << 22


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given: the i-th smallest of m is multiplied by
    m - i + 1 (i from 1), each kept at least as large as the one before it (so the order of
    the p-values is kept) and at most 1. An adjusted p under the level rejects exactly the
    hypotheses Holm's step-down procedure rejects at that level."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _sign_sums(diffs: np.ndarray, signs: np.ndarray) -> np.ndarray:
    return np.abs(signs @ diffs)


def sign_flip_p(
    a: Sequence[float], b: Sequence[float], *, samples: int = 2000, seed: int = 0
) -> float:
    """Two-sided paired permutation p-value of mean(a) - mean(b) (a[i], b[i]: one item). Under
    "no difference" each item's difference is as likely to have either sign; the p-value is
    the share of sign patterns whose |sum| is at least the observed one. Exact (every pattern)
    for up to EXACT_MAX non-zero differences, else `samples` seeded random patterns, counted
    as (1 + hits) / (1 + samples) so it is never 0. For 0/1 items it is McNemar's exact test.
    1.0 when no item differs."""
    if len(a) != len(b):
        raise ValueError(f"paired vectors differ in length: {len(a)} vs {len(b)}")
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diffs = diffs[diffs != 0]
    n = len(diffs)
    if not n:
        return 1.0
    # a pattern ties the observed sum when they differ by rounding only
    observed = abs(float(diffs.sum())) - 1e-9 * max(1.0, float(np.abs(diffs).sum()))
    if n <= EXACT_MAX:
        patterns = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        return float(np.mean(_sign_sums(diffs, 2.0 * patterns - 1) >= observed))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK // n)
    hits = sum(
        int(np.sum(_sign_sums(diffs, rng.choice([-1.0, 1.0], size=(size, n))) >= observed))
        for size in (min(chunk, samples - start) for start in range(0, samples, chunk))
    )
    return (1 + hits) / (1 + samples)


def paired_p(
    a: Sequence[float], b: Sequence[float], binary: bool, *, samples: int = 2000, seed: int = 0
) -> float:
    """McNemar's exact p for 0/1 items, the sign-flip permutation p for graded ones."""
    if binary:
        return mcnemar_p([bool(x) for x in a], [bool(y) for y in b])
    return sign_flip_p(a, b, samples=samples, seed=seed)


def p_label(binary: bool) -> str:
    """The test paired_p runs, for people."""
    return "McNemar" if binary else "permutation"
