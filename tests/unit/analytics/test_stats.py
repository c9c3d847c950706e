"""jingxin.analytics.stats against published numbers: Wilson intervals (Newcombe 1998a),
Newcombe's hybrid-score difference intervals (Newcombe 1998b), the z-test against SciPy's
chi-square of the 2x2 table, Holm's adjustment (a worked example), sample sizes and power
against R's ``power.prop.test`` and a simulation; and every refusal names what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from jingxin.analytics.stats import (
    Arm,
    adjust,
    compare,
    compare_many,
    power,
    sample_size,
    uplift,
    wilson,
)
from jingxin.errors import InputError

# Newcombe RG (1998a), Two-sided confidence intervals for the single proportion: comparison
# of seven methods. Stat Med 17:857-872, Table I, method 3 (Wilson score, no correction).
WILSON_95 = [  # successes, n, low, high
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]  # fmt: skip

# Newcombe RG (1998b), Interval estimation for the difference between independent
# proportions: comparison of eleven methods. Stat Med 17:873-890, Table II, method 10.
NEWCOMBE_95 = [  # treated successes/n, control successes/n, low, high
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
]  # fmt: skip


@pytest.mark.parametrize(("successes", "n", "low", "high"), WILSON_95)
def test_wilson_matches_newcombe_table(successes: int, n: int, low: float, high: float) -> None:
    got = wilson(successes, n, 0.05)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_narrows_with_a_larger_alpha() -> None:
    (l95, h95), (l80, h80) = wilson(37, 1000, 0.05), wilson(37, 1000, 0.20)
    assert l95 < l80 < 0.037 < h80 < h95


@pytest.mark.parametrize(("x1", "n1", "x0", "n0", "low", "high"), NEWCOMBE_95)
def test_difference_interval_matches_newcombe_table(x1, n1, x0, n0, low, high) -> None:
    c = compare(Arm("T", n1, x1), Arm("C", n0, x0))
    assert c.diff == pytest.approx(x1 / n1 - x0 / n0)
    assert c.diff_interval == pytest.approx((low, high), abs=5e-5)


def test_z_test_is_the_uncorrected_chi_square_of_the_table() -> None:
    # Given 52/1000 against 37/1000, When compared, Then the two-sided pooled z-test's p is
    # the p of SciPy's chi-square test of the 2x2 table without Yates' correction (z² = χ²)
    c = compare(Arm("B", 1000, 52), Arm("A", 1000, 37))
    chi2, p, _, _ = chi2_contingency([[52, 948], [37, 963]], correction=False)
    assert c.z**2 == pytest.approx(chi2)
    assert c.p_value == pytest.approx(p, rel=1e-9) and c.p_adjusted == c.p_value
    assert c.z > 0 and c.lift == pytest.approx(15 / 37)
    assert c.p_value == pytest.approx(0.10382, abs=1e-5) and not c.significant
    assert c.treated_interval == pytest.approx(wilson(52, 1000))
    # the other way round: the same p, the sign of z and of the difference flipped
    back = compare(Arm("A", 1000, 37), Arm("B", 1000, 52))
    assert back.z == pytest.approx(-c.z) and back.p_value == pytest.approx(c.p_value)
    assert back.diff_interval == pytest.approx((-c.diff_interval[1], -c.diff_interval[0]))


def test_a_clear_difference_is_significant() -> None:
    c = compare(Arm("B", 20_000, 600), Arm("A", 20_000, 400))
    assert c.significant and c.p_value < 1e-9 and c.diff_interval[0] > 0


def test_no_successes_in_either_arm_is_no_evidence_not_a_crash() -> None:
    c = compare(Arm("B", 500, 0), Arm("A", 800, 0))
    assert (c.z, c.p_value, c.lift, c.significant) == (0.0, 1.0, None, False)
    assert c.diff_interval[0] < 0 < c.diff_interval[1]


def test_uplift_counts_incremental_conversions_over_the_treated_arm() -> None:
    up = uplift(Arm("treated", 100_000, 2_300), Arm("holdout", 5_000, 100))
    low, high = up.comparison.diff_interval
    assert up.rate == pytest.approx(0.003)
    assert up.conversions == pytest.approx(300)
    assert up.interval == pytest.approx((low * 100_000, high * 100_000))
    assert up.interval[0] < 0 < up.interval[1]  # 5,000 held out is too few to be sure


# Holm (1979) step-down, worked example as in most textbooks: four p-values, m = 4:
# sorted 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 = 0.04 → kept at 0.06.
def test_holm_adjusts_in_step_down_order_and_keeps_the_input_order() -> None:
    assert adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust([0.01, 0.04, 0.03, 0.005], method="bonferroni") == pytest.approx(
        [0.04, 0.16, 0.12, 0.02])
    assert adjust([0.5, 0.6], method="holm") == [1.0, 1.0]  # capped at 1
    assert adjust([0.2, 0.01], method="none") == [0.2, 0.01]
    assert adjust([]) == []
    with pytest.raises(InputError, match="correction 'fdr'"):
        adjust([0.1], method="fdr")  # type: ignore[arg-type]


def test_compare_many_adjusts_with_holm_and_lists_empty_arms() -> None:
    arms = [Arm("A", 1000, 37), Arm("B", 1000, 52), Arm("C", 0, 0), Arm("D", 1000, 60)]
    result = compare_many(arms, control="A")
    assert result.control.name == "A" and result.empty == ("C",)
    raw = [c.p_value for c in result.comparisons]
    assert [c.treated.name for c in result.comparisons] == ["B", "D"]
    assert [c.p_adjusted for c in result.comparisons] == pytest.approx(adjust(raw))
    assert result.comparisons[1].p_adjusted == pytest.approx(2 * raw[1])  # D, the smaller p
    assert [c.significant for c in result.comparisons] == [False, True]
    # the first arm is the control unless one is named
    assert compare_many(arms).control.name == "A"


@pytest.mark.parametrize(("arms", "control", "message"), [
    ([Arm("A", 0, 0), Arm("B", 100, 3)], "A",
     "arm A (the control) has no subscribers (n = 0): nothing to compare yet"),
    ([Arm("A", 0, 0), Arm("B", 0, 0)], None, "arm A (the control) has no subscribers"),
    ([Arm("A", 10, 1), Arm("B", 10, 2)], "Z", "control arm 'Z' is not one of the arms (A, B)"),
    ([Arm("A", 10, 1), Arm("A", 10, 2)], None, "arm A is given more than once"),
    ([Arm("A", 10, 1)], None, "an experiment needs at least two arms (got A)"),
])  # fmt: skip
def test_compare_many_refusals_name_the_arm(arms, control, message) -> None:
    with pytest.raises(InputError, match=None) as err:
        compare_many(arms, control=control)
    assert message in str(err.value)


def test_an_empty_arm_or_impossible_counts_are_refused_by_name() -> None:
    with pytest.raises(InputError, match=r"^arm B has no subscribers \(n = 0\)"):
        compare(Arm("B", 0, 0), Arm("A", 10, 1))
    with pytest.raises(InputError, match="arm B: 52 successes out of n = 37"):
        Arm("B", 37, 52)
    with pytest.raises(InputError, match="arm B: n -1 is not a whole number"):
        Arm("B", -1, 0)
    with pytest.raises(InputError, match="arm B: n 10.0 is not a whole number"):
        Arm("B", 10.0, 0)  # type: ignore[arg-type]
    assert Arm("B", np.int64(10), np.int64(3)).rate == 0.3
    with pytest.raises(InputError, match="wilson: 0 successes out of n = 0"):
        wilson(0, 0)
    with pytest.raises(InputError, match="--alpha: 0 is not a significance level"):
        compare(Arm("B", 10, 1), Arm("A", 10, 1), alpha=0)


# R, stats::power.prop.test: the same formula (pooled under H0, unpooled under H1).
#   power.prop.test(p1 = .10, p2 = .12, power = .80)  ->  n = 3840.9 per group
#   power.prop.test(p1 = .50, p2 = .75, power = .90)  ->  n = 76.7   (R's own example)
#   power.prop.test(n = 50, p1 = .50, p2 = .75)       ->  power = 0.740 (R's own example)
def test_sample_size_matches_power_prop_test() -> None:
    size = sample_size(0.10, min_diff=0.02)
    assert (size.n_control, size.n_treated, size.total) == (3841, 3841, 7682)
    assert size.expected == pytest.approx(0.12) and size.lift == pytest.approx(0.2)
    relative = sample_size(0.10, min_lift=0.2)  # the same effect, said relatively
    assert (relative.n_control, relative.total) == (3841, 7682)
    assert sample_size(0.50, min_diff=0.25, power=0.90).n_control == 77
    assert power(0.50, 0.75, n_control=50) == pytest.approx(0.740, abs=5e-4)


def test_sample_size_is_the_smallest_n_with_the_power() -> None:
    for baseline, diff, ratio in [(0.02, 0.002, 1.0), (0.3, -0.05, 3.0), (0.01, 0.01, 0.5)]:
        s = sample_size(baseline, min_diff=diff, ratio=ratio)
        assert abs(s.n_treated - s.n_control * ratio) <= ratio + 1
        assert s.total == s.n_control + s.n_treated
        assert power(baseline, baseline + diff, n_control=s.n_control,
                     n_treated=s.n_treated) >= 0.8  # fmt: skip
        assert power(baseline, baseline + diff, n_control=s.n_control - 2,
                     n_treated=round((s.n_control - 2) * ratio)) < 0.8  # fmt: skip


def test_simulated_power_of_the_z_test_at_that_n_is_eighty_percent() -> None:
    # Given 3,841 per arm at 10% vs 12%, When 20,000 experiments are drawn and z-tested,
    # Then about 80% reject at 5% (and about 5% when there is no difference)
    rng = np.random.default_rng(16)
    n, reps = 3841, 20_000

    def rejects(p0: float, p1: float) -> float:
        x0, x1 = rng.binomial(n, p0, reps), rng.binomial(n, p1, reps)
        pooled = (x0 + x1) / (2 * n)
        z = (x1 - x0) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
        return float(np.mean(np.abs(z) > 1.959964))

    assert rejects(0.10, 0.12) == pytest.approx(0.80, abs=0.015)
    assert rejects(0.10, 0.10) == pytest.approx(0.05, abs=0.008)


def test_more_arms_test_each_at_alpha_over_the_comparisons() -> None:
    three = sample_size(0.02, min_lift=0.10, arms=3)
    assert three.alpha_per_comparison == pytest.approx(0.025)
    same = sample_size(0.02, min_lift=0.10, alpha=0.025)
    assert (three.n_control, three.n_treated) == (same.n_control, same.n_treated)
    assert three.total == 3 * three.n_control


def test_a_holdout_share_sets_the_audience_so_the_holdout_is_large_enough() -> None:
    s = sample_size(0.02, min_lift=0.10, holdout_share=0.05)
    assert s.ratio == pytest.approx(19)
    assert s.total * 0.05 >= s.n_control and s.total * 0.95 >= s.n_treated
    assert (s.total - 2) * 0.05 < s.n_control  # no more than needed
    # a small hold-out needs fewer held out than a balanced test, but a far larger audience
    balanced = sample_size(0.02, min_lift=0.10)
    assert s.n_control < balanced.n_control and s.total > 5 * balanced.total
    held, treated = int(s.total * 0.05), s.total - int(s.total * 0.05)
    assert power(0.02, 0.022, n_control=held, n_treated=treated) >= 0.8 - 1e-4
    # three arms and a 10% hold-out: the other 90% split over two treated arms
    t = sample_size(0.02, min_lift=0.10, arms=3, holdout_share=0.10)
    assert t.ratio == pytest.approx(4.5) and t.total * 0.45 >= t.n_treated


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"holdout_share": 0.0}, "--holdout: 0 is not a hold-out share strictly between 0 and 1"),
    ({"holdout_share": 1.0}, "--holdout: 1 is not a hold-out share"),
    ({"holdout_share": -0.05}, "--holdout: -0.05 is not"),
    ({"holdout_share": 0.05, "ratio": 2.0}, "--ratio and --holdout both set the group sizes"),
    ({"ratio": 0.0}, "--ratio: 0.0 is not a positive treated:control ratio"),
    ({"arms": 1}, "--arms: 1: an experiment has 2 arms or more"),
    ({"power": 1.0}, "--power: 1 is not a share strictly between 0 and 1"),
    ({"alpha": 0.0}, "--alpha: 0 is not a significance level"),
])  # fmt: skip
def test_sample_size_refusals_name_the_setting(kwargs, message) -> None:
    with pytest.raises(InputError) as err:
        sample_size(0.02, min_lift=0.1, **kwargs)
    assert message in str(err.value)


def test_the_effect_to_detect_must_be_one_possible_effect() -> None:
    with pytest.raises(InputError, match="--lift .relative, e.g. 10%. or --diff"):
        sample_size(0.02)
    with pytest.raises(InputError, match="one of them"):
        sample_size(0.02, min_lift=0.1, min_diff=0.01)
    with pytest.raises(InputError, match="--lift: 0: the effect to detect cannot be 0"):
        sample_size(0.02, min_lift=0)
    with pytest.raises(InputError, match="--diff: 0.99 over a baseline of 0.02 gives a rate of"):
        sample_size(0.02, min_diff=0.99)
    with pytest.raises(InputError, match="--baseline: 2 is not a rate strictly between 0 and 1"):
        sample_size(2, min_lift=0.1)
    # a drop is an effect too (unsubscribes down 20%)
    assert sample_size(0.01, min_lift=-0.2).expected == pytest.approx(0.008)
