"""The statistics behind every interval and comparison (evaluation/uncertainty.py): known
answers, the paired resampling keeping pairs, and seeded determinism."""

import random

import pytest

from {{ cookiecutter.module_name }}.evaluation.uncertainty import (
    Interval,
    bootstrap_mean,
    mcnemar_p,
    paired_difference,
    unpaired_difference,
)

TEN = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1]  # 6 of 10 correct


def width(found: Interval) -> float:
    return found.hi - found.lo


def test_all_correct_gives_a_zero_width_interval() -> None:
    assert bootstrap_mean([1] * 12) == Interval(1.0, 1.0, 1.0, 12)
    assert bootstrap_mean([0.0] * 5) == Interval(0.0, 0.0, 0.0, 5)


def test_the_interval_contains_the_mean_and_widens_as_n_shrinks() -> None:
    found = bootstrap_mean(TEN)
    assert found.value == 0.6 and found.n == 10
    assert found.lo < 0.6 < found.hi
    # the same 60 % share measured on 40, 10 and 5 items
    widths = [width(bootstrap_mean(TEN * 4)), width(found), width(bootstrap_mean(TEN[:5]))]
    assert widths[0] < widths[1] < widths[2]


def test_a_half_correct_hundred_items_match_the_normal_approximation() -> None:
    found = bootstrap_mean([1, 0] * 50)
    # 0.5 +- 1.96 * sqrt(0.25 / 100) = [0.402, 0.598]
    assert found.lo == pytest.approx(0.402, abs=0.03) and found.hi == pytest.approx(0.598, abs=0.03)


def test_the_confidence_level_sets_the_width() -> None:
    rng = random.Random(3)
    values = [rng.random() for _ in range(50)]
    assert width(bootstrap_mean(values, confidence=0.8)) < width(bootstrap_mean(values))


def test_no_items_is_said_as_such() -> None:
    assert bootstrap_mean([]) == Interval(0.0, 0.0, 0.0, 0)


def test_a_seed_fixes_the_interval() -> None:
    rng = random.Random(0)
    values = [rng.random() for _ in range(30)]
    assert bootstrap_mean(values, seed=7) == bootstrap_mean(values, seed=7)
    others = {bootstrap_mean(values, seed=seed) for seed in range(5)}
    assert len(others) > 1  # the seed is used


def test_the_paired_difference_of_identical_vectors_is_exactly_zero() -> None:
    assert paired_difference(TEN, TEN) == Interval(0.0, 0.0, 0.0, 10)


def test_pairs_are_resampled_together_so_item_difficulty_cancels() -> None:
    """Scores of very uneven difficulty, one model exactly 0.1 ahead on every item: paired,
    the difference is certain; as two unrelated samples it is lost in the spread."""
    rng = random.Random(1)
    b = [rng.random() * 0.9 for _ in range(40)]
    a = [x + 0.1 for x in b]
    paired = paired_difference(a, b)
    assert paired.value == pytest.approx(0.1) and width(paired) < 1e-9
    unpaired = unpaired_difference(a, b)
    assert unpaired.value == pytest.approx(0.1) and unpaired.lo < 0 < unpaired.hi


def test_a_clear_paired_gain_excludes_zero_and_a_coin_flip_does_not() -> None:
    base = [0] * 30
    assert paired_difference([1] * 20 + [0] * 10, base).excludes_zero
    assert not paired_difference([1, 0] * 15, [0, 1] * 15).excludes_zero


def test_paired_vectors_must_have_equal_length() -> None:
    with pytest.raises(ValueError, match="3 vs 2"):
        paired_difference([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="3 vs 2"):
        mcnemar_p([1, 0, 1], [1, 0])


@pytest.mark.parametrize(
    ("only_a", "only_b", "p"),
    [
        (2, 8, 0.109375),  # 2 * P(X <= 2), X ~ Binomial(10, 1/2) = 2 * 56 / 1024
        (0, 5, 0.0625),  # 2 / 32
        (3, 12, 0.03515625),
        (5, 5, 1.0),
        (0, 0, 1.0),  # no discordant item: nothing to test
    ],
)
def test_mcnemar_exact_on_known_tables(only_a: int, only_b: int, p: float) -> None:
    # the concordant items (both right, both wrong) do not change the test
    a = [1] * only_a + [0] * only_b + [1, 1, 0]
    b = [0] * only_a + [1] * only_b + [1, 1, 0]
    assert mcnemar_p(a, b) == pytest.approx(p)
    assert mcnemar_p(b, a) == pytest.approx(p)  # two-sided
