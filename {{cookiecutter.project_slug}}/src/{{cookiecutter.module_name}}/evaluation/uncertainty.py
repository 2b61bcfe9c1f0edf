"""How far to trust a score measured on a few dozen items.

Shares of 0/1 items (right or wrong, in format or not) get score intervals: Wilson's for one
share, Tango's for the paired difference of two models on the same items, Newcombe's hybrid
score interval for the difference of two item sets, and McNemar's exact test for paired 0/1
items. Graded scores (a mean of partial credit) get seeded percentile-bootstrap intervals,
of a mean, of a paired difference and of an unpaired one. `minimum_detectable_difference`
says how large a paired difference of 0/1 items a suite of n items can detect.

Why score intervals for 0/1 items: a percentile bootstrap resamples only the values it was
given, so 0 of 35 right (or 35 of 35) gives the zero-width interval [0, 0], as if 35 items
proved the model can never answer; Wilson's interval on 0 of 35 is [0, 0.099]. Wilson over
Clopper-Pearson: Clopper-Pearson guarantees at least the nominal coverage by being wider
than it needs to be (3 of 10: [0.067, 0.652] against Wilson's [0.108, 0.603]), which on a
few dozen items hides real differences; Wilson's coverage stays close to the nominal level
from a handful of items up (Brown, Cai and DasGupta 2001, Agresti and Coull 1998), it needs
no special case at 0 or n, and it is the same score-test inversion as Tango's and
Newcombe's difference intervals, so one share and its differences are judged alike.

Pure functions of number vectors; which items and which metric is the caller's business
(selection/comparison.py). Every bootstrap draws from its own generator seeded with `seed`,
so a result does not depend on what was computed before it."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

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


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of `confidence` (1.96 at 0.95)."""
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def _counts(values: Sequence[float]) -> tuple[int, int]:
    """(ones, n) of a 0/1 vector; anything else is a caller's bug."""
    data = np.asarray(values, dtype=float)
    if not np.isin(data, (0.0, 1.0)).all():
        raise ValueError("a score interval needs 0/1 values; graded scores are bootstrapped")
    return int(data.sum()), len(data)


def _wilson_bounds(successes: int, n: int, z: float) -> tuple[float, float]:
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # exact at the ends: no successes has nothing below 0, all of them nothing above 1
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The share successes / n with Wilson's score interval: the shares p whose score test
    (p_hat - p) / sqrt(p (1 - p) / n) stays within the normal quantile. Never zero-width:
    0 of n gives [0, z^2 / (n + z^2)]. No items: 0 with n = 0."""
    if not n:
        return Interval(0.0, 0.0, 0.0, 0)
    return _interval(successes / n, *_wilson_bounds(successes, n, z_value(confidence)), n)


def binary_mean(values: Sequence[float], *, confidence: float = 0.95) -> Interval:
    """The share of 1s in a 0/1 vector, with its Wilson interval."""
    successes, n = _counts(values)
    return wilson(successes, n, confidence)


def _root(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Where a decreasing `f` crosses 0 in [lo, hi] (f(lo) > 0 >= f(hi)), by bisection."""
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


def _tango_statistic(delta: float, b: int, c: int, n: int) -> float:
    """Tango's score statistic for "p(a only) - p(b only) = delta": the observed difference
    of the discordant counts over its standard error at the constrained maximum-likelihood
    cell probabilities (Tango 1998, eq. 3-5). At delta = 0 it is McNemar's (b - c) /
    sqrt(b + c)."""
    big_a = 2 * n
    big_b = -b - c + (2 * n - b + c) * delta
    big_c = -c * delta * (1 - delta)
    p21 = (math.sqrt(max(0.0, big_b * big_b - 4 * big_a * big_c)) - big_b) / (2 * big_a)
    gap = b - c - n * delta
    variance = n * (2 * p21 + delta * (1 - delta))
    if variance <= 0:
        return 0.0 if gap == 0 else math.copysign(math.inf, gap)
    return gap / math.sqrt(variance)


def paired_binary_difference(
    a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95
) -> Interval:
    """mean(a) - mean(b) for two models' 0/1 scores on the same items, with Tango's score
    interval (the deltas whose score test, above, stays within the normal quantile).

    Only the discordant items (one model right, the other wrong) move the difference, and
    the interval is built from them as McNemar's test is. The paired bootstrap of 0/1
    items is zero-width whenever every item agrees (both models 0 of 35 reads as "exactly
    no difference"); Tango's interval is then +-z^2 / (n + z^2), how large a discordance
    n agreeing items can still hide. Tango's over Newcombe's paired interval: Newcombe's
    correlation correction collapses as the items agree (10 identical items: +-0.06
    against Tango's +-0.28), and Tango's holds its coverage on small tables (Fagerland,
    Lydersen and Laake 2013 recommend it)."""
    if len(a) != len(b):
        raise ValueError(f"paired vectors differ in length: {len(a)} vs {len(b)}")
    _counts(a), _counts(b)  # 0/1 only
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(first)
    if not n:
        return Interval(0.0, 0.0, 0.0, 0)
    only_a = int(((first == 1) & (second == 0)).sum())
    only_b = int(((first == 0) & (second == 1)).sum())
    z, value = z_value(confidence), (only_a - only_b) / n
    lo = -1.0
    if _tango_statistic(-1.0, only_a, only_b, n) > z:
        lo = _root(lambda d: _tango_statistic(d, only_a, only_b, n) - z, -1.0, value)
    hi = 1.0
    if _tango_statistic(1.0, only_a, only_b, n) <= -z:
        hi = _root(lambda d: _tango_statistic(d, only_a, only_b, n) + z, value, 1.0)
    return _interval(value, lo, hi, n)


def unpaired_binary_difference(
    a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95
) -> Interval:
    """mean(a) - mean(b) for two different sets of 0/1 items (e.g. test vs val), with
    Newcombe's hybrid score interval (1998, method 10): the two Wilson intervals combined,
    each side from the distances of the two shares to their own Wilson bounds. n is the
    smaller set's size."""
    (k1, n1), (k2, n2) = _counts(a), _counts(b)
    if not (n1 and n2):
        return Interval(0.0, 0.0, 0.0, 0)
    z = z_value(confidence)
    (l1, u1), (l2, u2) = _wilson_bounds(k1, n1, z), _wilson_bounds(k2, n2, z)
    p1, p2 = k1 / n1, k2 / n2
    lo = p1 - p2 - math.hypot(p1 - l1, u2 - p2)
    hi = p1 - p2 + math.hypot(u1 - p1, p2 - l2)
    return _interval(p1 - p2, lo, hi, min(n1, n2))


def minimum_detectable_difference(
    n: int, discordant: int = 0, *, confidence: float = 0.95, power: float = 0.8
) -> float:
    """The smallest paired difference of 0/1 shares that n items detect with probability
    `power` at two-sided level 1 - confidence: the normal approximation to McNemar's test
    (Connor 1987), solved for the difference d instead of n:

        sqrt(n) d = z_(1 - alpha/2) sqrt(psi) + z_power sqrt(psi - d^2),
        psi = max(discordant / n, d)

    psi is the share of items on which the two models disagree, observed on these items
    (`discordant`; 0 when unknown). It is at least d (a difference d needs at least d of the
    items discordant), so with no disagreement seen the answer is the floor of the suite
    itself, about (z_(1 - alpha/2) + z_power)^2 / n: 0.21 on 35 items at 95 % and 80 %.
    1.0 when n is too small to detect anything."""
    if n <= 0:
        return 1.0
    z_alpha, z_power, root_n = z_value(confidence), NormalDist().inv_cdf(power), math.sqrt(n)
    share = discordant / n

    def short(d: float) -> float:  # > 0 while d is too small to detect
        psi = max(share, d)
        return z_alpha * math.sqrt(psi) + z_power * math.sqrt(max(0.0, psi - d * d)) - root_n * d

    if short(1.0) > 0:
        return 1.0
    return round(_root(short, 0.0, 1.0), 4)
