"""Holm's correction and the paired p-values, against answers worked out by hand."""

import itertools
import random

import pytest

from {{ cookiecutter.module_name }}.evaluation.multiplicity import (
    EXACT_MAX,
    holm,
    paired_p,
    sign_flip_p,
)
from {{ cookiecutter.module_name }}.evaluation.uncertainty import mcnemar_p


def test_holm_textbook_example() -> None:
    # four hypotheses at 0.05 (the Holm-Bonferroni article's example): sorted 0.005, 0.01,
    # 0.03, 0.04 are multiplied by 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04, and the last is
    # raised to 0.06 to keep the order; H1 and H4 are rejected, H2 and H3 are not
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [p < 0.05 for p in adjusted] == [True, False, False, True]


def test_holm_is_capped_at_one_and_keeps_ties_equal() -> None:
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # 2 x 0.5 = 1, then max(1, 0.6)
    assert holm([0.02, 0.02, 0.5]) == pytest.approx([0.06, 0.06, 0.5])
    assert holm([0.04]) == [0.04]  # one comparison: nothing to correct
    assert holm([]) == []


def test_holm_never_lowers_a_p_and_is_monotone_in_the_raw_order() -> None:
    rng = random.Random(3)
    for _ in range(50):
        raw = [rng.random() ** 3 for _ in range(rng.randint(1, 9))]
        adjusted = holm(raw)
        assert all(raw[i] <= adjusted[i] <= 1 for i in range(len(raw)))
        order = sorted(range(len(raw)), key=raw.__getitem__)
        assert [adjusted[i] for i in order] == sorted(adjusted)
        bonferroni = [min(1.0, len(raw) * p) for p in raw]
        assert all(a <= b + 1e-12 for a, b in zip(adjusted, bonferroni, strict=True))


def test_sign_flip_exact_known_answers() -> None:
    # differences 1, 2, 3: of the 8 sign patterns only +++ and --- reach |sum| 6
    assert sign_flip_p([1, 2, 3], [0, 0, 0]) == pytest.approx(2 / 8)
    # differences 1, 2, -1 (sum 2): the patterns summing to 0 are +-+ and -+-, the other 6
    # reach |sum| 2 or 4
    assert sign_flip_p([1, 2, 0], [0, 0, 1]) == pytest.approx(6 / 8)
    # five equal gains: 2 of 32 patterns as extreme; ties (0 differences) are dropped
    assert sign_flip_p([0.6] * 5 + [0.3], [0.1] * 5 + [0.3]) == pytest.approx(2 / 32)
    assert sign_flip_p([0.2, 0.4], [0.2, 0.4]) == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        sign_flip_p([1.0], [1.0, 0.0])


@pytest.mark.parametrize(
    ("only_a", "only_b", "both"), [(5, 0, 3), (7, 2, 10), (4, 4, 1), (1, 6, 0)]
)
def test_sign_flip_on_0_1_items_is_mcnemar(only_a: int, only_b: int, both: int) -> None:
    a = [1] * only_a + [0] * only_b + [1] * both
    b = [0] * only_a + [1] * only_b + [1] * both
    assert sign_flip_p(a, b) == pytest.approx(mcnemar_p(a, b))
    assert paired_p(a, b, binary=True) == mcnemar_p(a, b)


def test_sign_flip_samples_past_the_exact_limit_reproducibly() -> None:
    n = EXACT_MAX + 14
    # two thirds of the items gain 0.3, a third lose 0.1: a clear lead
    a = [0.4 if i % 3 == 0 else 0.8 for i in range(n)]
    b = [0.5] * n
    p = sign_flip_p(a, b, samples=4000, seed=1)
    assert p == sign_flip_p(a, b, samples=4000, seed=1)
    assert 1 / 4001 <= p < 0.01  # never 0: the observed pattern counts
    # no lead at all: a symmetric set of differences
    flat = [0.5 + (0.1 if i % 2 else -0.1) for i in range(n)]
    assert sign_flip_p(flat, b, samples=4000, seed=1) > 0.9


def test_sign_flip_exact_matches_brute_force() -> None:
    rng = random.Random(7)
    diffs = [round(rng.uniform(-1, 1), 2) for _ in range(9)]
    observed = abs(sum(diffs))
    sums = [
        abs(sum(s * d for s, d in zip(signs, diffs, strict=True)))
        for signs in itertools.product((-1, 1), repeat=len(diffs))
    ]
    expected = sum(s >= observed - 1e-9 for s in sums) / len(sums)
    assert sign_flip_p(diffs, [0.0] * len(diffs)) == pytest.approx(expected)
