"""The statistics behind every interval and comparison (evaluation/uncertainty.py): known
answers (checked against scipy and pinned, so a change in either shows), the paired
resampling keeping pairs, seeded determinism, and how comparison.py applies them: score
intervals for 0/1 metrics, each suite's smallest detectable difference and the guardrail
verdicts decided within it."""

import math
import random

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from {{ cookiecutter.module_name }}.evaluation.uncertainty import (
    Interval,
    binary_mean,
    bootstrap_mean,
    mcnemar_p,
    minimum_detectable_difference,
    paired_binary_difference,
    paired_difference,
    unpaired_binary_difference,
    unpaired_difference,
    wilson,
)
from {{ cookiecutter.module_name }}.params import SelectParams
from {{ cookiecutter.module_name }}.selection.comparison import (
    compare,
    guardrail_margins,
    interval,
    suite_sizes,
    with_interval,
)
from {{ cookiecutter.module_name }}.selection.report import headline, size_blocks

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


@pytest.mark.parametrize(
    ("k", "n"), [(0, 35), (3, 10), (21, 60), (35, 35), (1, 8), (50, 100), (2, 5)]
)
@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_wilson_matches_scipy(k: int, n: int, confidence: float) -> None:
    found = wilson(k, n, confidence)
    expected = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert found.value == pytest.approx(k / n, abs=1e-4) and found.n == n
    assert found.lo == pytest.approx(expected.low, abs=1e-4)
    assert found.hi == pytest.approx(expected.high, abs=1e-4)


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (0, 35, 0.0, 0.0989),  # the base's 0 of 35: at most ~10 %, not exactly 0
        (35, 35, 0.9011, 1.0),
        (3, 10, 0.1078, 0.6032),  # Clopper-Pearson: [0.0667, 0.6525]
        (21, 60, 0.2417, 0.4764),
    ],
)
def test_wilson_known_values(k: int, n: int, lo: float, hi: float) -> None:
    assert wilson(k, n) == Interval(round(k / n, 4), lo, hi, n)


def test_a_share_of_0_1_items_is_never_zero_width() -> None:
    assert binary_mean([0] * 35) == Interval(0.0, 0.0, 0.0989, 35)
    assert binary_mean([True] * 12).lo < 1.0
    assert binary_mean([]) == Interval(0.0, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match="0/1 values"):
        binary_mean([0.5, 1.0])


def table(only_a: int, only_b: int, n: int) -> tuple[list[int], list[int]]:
    """Two 0/1 vectors of n items: `only_a` items only a gets right, `only_b` only b, the
    rest both wrong (concordant items do not move the difference)."""
    rest = n - only_a - only_b
    return [1] * only_a + [0] * only_b + [0] * rest, [0] * only_a + [1] * only_b + [0] * rest


@pytest.mark.parametrize("n", [8, 35, 100])
def test_agreeing_items_give_tangos_interval_not_zero_width(n: int) -> None:
    """Every item agrees: the paired bootstrap says exactly 0; Tango's interval is +-z^2 / (n +
    z^2), Wilson's upper bound on 0 discordant items of n."""
    assert paired_difference(*table(0, 0, n)) == Interval(0.0, 0.0, 0.0, n)
    found = paired_binary_difference(*table(0, 0, n))
    upper = binomtest(0, n).proportion_ci(method="wilson").high
    assert found.value == 0 and found.n == n
    assert (found.lo, found.hi) == (pytest.approx(-upper, abs=1e-4), pytest.approx(upper, abs=1e-4))


@pytest.mark.parametrize(("only_a", "only_b", "n"), [(5, 0, 8), (3, 0, 8), (7, 2, 40), (4, 1, 30)])
def test_tango_excludes_0_exactly_when_mcnemars_score_test_rejects(
    only_a: int, only_b: int, n: int
) -> None:
    found = paired_binary_difference(*table(only_a, only_b, n))
    statistic = (only_a - only_b) / math.sqrt(only_a + only_b)
    assert found.excludes_zero == (abs(statistic) > norm.ppf(0.975))
    assert found.lo < found.value == round((only_a - only_b) / n, 4) < found.hi


def test_tango_known_values() -> None:
    # the airway hyper-responsiveness table (Bentur et al. 2009): 1 and 7 discordant of 21
    assert paired_binary_difference(*table(1, 7, 21)) == Interval(-0.2857, -0.5172, -0.026, 21)
    assert paired_binary_difference(*table(20, 0, 40)) == Interval(0.5, 0.352, 0.648, 40)
    assert paired_binary_difference([1] * 6, [0] * 6).hi == 1.0  # the bounds stay in [-1, 1]


def test_newcombe_unpaired_known_values() -> None:
    # Newcombe (1998), 56/70 - 48/80, method 10: +0.0524 to +0.3339
    found = unpaired_binary_difference([1] * 56 + [0] * 14, [1] * 48 + [0] * 32)
    assert found == Interval(0.2, 0.0524, 0.3339, 70)
    assert unpaired_binary_difference([0] * 5, [0] * 9).hi > 0  # 0 of 5 vs 0 of 9: not certain


@pytest.mark.parametrize(
    ("n", "discordant", "mdd"), [(35, 0, 0.2096), (100, 10, 0.0876), (297, 30, 0.0515)]
)
def test_minimum_detectable_difference_known_values(n: int, discordant: int, mdd: float) -> None:
    found = minimum_detectable_difference(n, discordant)
    assert found == mdd
    # it solves sqrt(n) d = z_(1-alpha/2) sqrt(psi) + z_power sqrt(psi - d^2), psi >= d
    psi = max(discordant / n, found)
    rhs = norm.ppf(0.975) * math.sqrt(psi) + norm.ppf(0.8) * math.sqrt(psi - found**2)
    assert math.sqrt(n) * found == pytest.approx(rhs, abs=1e-3)


def test_the_detectable_difference_is_detected_with_the_asked_power() -> None:
    """Simulated pairs with that difference and discordance: McNemar's test (normal
    approximation, as in the formula) rejects in about 80 % of the runs."""
    n, discordant = 200, 30
    d = minimum_detectable_difference(n, discordant)
    psi = discordant / n
    rng = np.random.default_rng(0)
    cells = rng.multinomial(n, [(psi + d) / 2, (psi - d) / 2, 1 - psi], size=20000)
    b, c = cells[:, 0], cells[:, 1]
    statistic = np.abs(b - c) / np.sqrt(np.maximum(b + c, 1))
    assert (statistic > norm.ppf(0.975)).mean() == pytest.approx(0.8, abs=0.03)


def test_more_items_detect_less_and_disagreement_needs_more() -> None:
    sizes = [minimum_detectable_difference(n, n // 10) for n in (20, 80, 320)]
    assert sizes[0] > sizes[1] > sizes[2]
    usual = minimum_detectable_difference(100, 10)
    assert minimum_detectable_difference(100, 40) > usual
    assert minimum_detectable_difference(100, 10, power=0.9) > usual
    assert minimum_detectable_difference(3) == 1.0  # 3 items cannot detect anything
    assert minimum_detectable_difference(0) == 1.0


SETTINGS = {"samples": 500, "confidence": 0.95, "seed": 0}


def model(name: str, task: int, qa: int, n_task: int = 35, n_qa: int = 50, fmt: int = 35) -> dict:
    """A report: the first `task` of n_task task items right, the first `fmt` in format, the
    first `qa` of n_qa general QA items right (a worse model's right items are a subset)."""
    items = {
        "task": [
            {"id": f"t{i}", "correct": i < task, "score": float(i < task), "exact": False}
            | {"format_ok": i < fmt, "drift": False}
            for i in range(n_task)
        ],
        "general_qa": [{"id": f"q{i}", "correct": i < qa} for i in range(n_qa)],
        "instruction_follow": [{"id": f"f{i}", "correct": True} for i in range(20)],
    }
    metrics = {"general_qa": qa / n_qa, "format_correct": fmt / n_task, "task_accuracy": task / 35}
    metrics["forgetting_score"] = round((50 - qa) / 70, 4)  # of the base's 50 + 20 right items
    return {"model": name, "role": "checkpoint", "step": 1, "items": items, "metrics": metrics}


BASE = {**model("base", 0, 50), "role": "base"}


def test_a_0_of_35_base_is_shown_with_an_honest_interval() -> None:
    assert with_interval(interval(BASE, "task_accuracy", SETTINGS)) == "0.000 [0.000, 0.099]"
    assert interval(BASE, "task_score", SETTINGS).hi == 0.0  # graded: the bootstrap
    same = compare(BASE, BASE, "task_accuracy", SETTINGS)
    assert (same.diff.lo, same.diff.hi) == (-0.0989, 0.0989)
    assert same.verdict == "no difference detectable on 35 items"


def test_each_suite_has_its_smallest_detectable_difference() -> None:
    fine_tune = model("checkpoint-1", 10, 38)
    sizes = suite_sizes(fine_tune, BASE, fine_tune, BASE, SelectParams())
    assert list(sizes) == ["val_task", "test_task", "general_qa", "instruction_follow"]
    assert (sizes["val_task"].n, sizes["val_task"].discordant) == (35, 10)
    assert sizes["val_task"].mdd == minimum_detectable_difference(35, 10)
    assert (sizes["general_qa"].n, sizes["general_qa"].discordant) == (50, 12)
    assert sizes["instruction_follow"].mdd == minimum_detectable_difference(20, 0)
    test = fine_tune["metrics"] | {"task_score": 0.3, "exact_match": 0.0, "format_drift": 0.0}
    selected = {**fine_tune, "metrics": {**test, "instruction_follow": 1.0}}
    found = Interval(0.3, 0.2, 0.4, 35)
    intervals = {"task_accuracy": found, "val_task_accuracy": found}
    metrics = headline(selected, test, test, None, True, [], intervals, [], sizes)
    assert metrics["general_qa_mdd"] == sizes["general_qa"].mdd
    assert metrics["test_task_mdd"] == sizes["test_task"].mdd


def test_a_guardrail_verdict_inside_the_noise_is_said_to_be() -> None:
    """General QA 39 of 50 against a floor of 0.8 x 50/50: 0.78 vs 0.8 fails by 0.02, well
    inside what 50 items detect; 25 of 50 fails beyond it."""
    rules = SelectParams()
    close = model("checkpoint-1", 10, 39)
    sizes = suite_sizes(close, BASE, close, BASE, rules)
    (note,) = [n for n in guardrail_margins(close, BASE, sizes, rules) if "general QA" in n]
    assert note.startswith("general QA 0.780 vs its guardrail 0.800 (0.8 x the base's 1.000")
    assert "ratio 0.78 vs 0.8): fails by 0.020, within this suite's smallest detectable " in note
    assert f"difference of {sizes['general_qa'].mdd:.3f} (50 items)" in note
    far = model("checkpoint-1", 10, 25)
    far_sizes = suite_sizes(far, BASE, far, BASE, rules)
    assert not any("general QA" in n for n in guardrail_margins(far, BASE, far_sizes, rules))
    # format: 27 of 35 in format (0.771 < 0.8) with a Wilson interval holding 0.8
    loose = model("checkpoint-1", 10, 50, fmt=27)
    (note,) = guardrail_margins(loose, BASE, suite_sizes(loose, BASE, loose, BASE, rules), rules)
    assert note.startswith("format_correct 0.771 [0.610, 0.879] vs select.min_format_correct 0.8")
    assert "fails, but the interval holds the threshold (35 items)" in note
    blocks = size_blocks(sizes, [note], "95%", 0.8)
    assert blocks[0].text == "What these items can detect"
    assert ["general QA", 50, 11, f"{sizes['general_qa'].mdd:.3f}"] in blocks[2].rows
