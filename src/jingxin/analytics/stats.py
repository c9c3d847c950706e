"""The statistics of an experiment: arms compared on a rate, uplift against a hold-out,
and how many subscribers an experiment needs before it is launched.

An :class:`Arm` is counts only (subscribers ``n``, of whom ``successes`` did the thing:
delivered, clicked, replied, converted, unsubscribed, complained); every function here works
on counts, so a report fed from the event log and a CSV typed by an analyst get the same
answers.

- :func:`wilson`: the Wilson score interval of one rate (SciPy's, see below).
- :func:`compare`: treated against control: the difference of rates with a Newcombe
  hybrid-score interval (Newcombe 1998, method 10), the relative lift, and the two-sided
  pooled two-proportion z-test.
- :func:`uplift`: :func:`compare` against a hold-out, with the difference also counted as
  incremental successes over the treated arm (difference × treated ``n``, interval likewise).
- :func:`compare_many`: A/B/n, every arm against one control, p-values adjusted for the
  number of comparisons (Holm by default, :func:`adjust`). An arm with no subscribers yet is
  listed as empty, not compared; an empty control is an error naming it.
- :func:`sample_size` and :func:`power`: the normal approximation with the variance pooled
  under the null and unpooled under the alternative (Fleiss, Levin & Paik, *Statistical
  Methods for Rates and Proportions*, 3rd ed., §4.2, without continuity correction; the
  formula of R's ``power.prop.test``), for unequal groups after Fleiss, Tytun & Ury (1980).

The interval and the test are separate methods and can, at the margin, disagree on whether
zero is excluded; ``significant`` follows the (adjusted) p-value. Intervals are per
comparison, not adjusted for multiplicity.

Bad input raises :class:`~jingxin.errors.InputError` naming the arm, or the ``jingxin
experiment size`` option the argument comes from (``--holdout``, ``--lift``, ...).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from scipy.stats import binomtest, norm

from jingxin.errors import InputError

Correction = Literal["holm", "bonferroni", "none"]
CORRECTIONS: tuple[str, ...] = ("holm", "bonferroni", "none")
SAMPLE_SIZE_METHOD = ("normal approximation, variance pooled under H0 and unpooled under H1 "
                      "(Fleiss, Levin & Paik 2003 §4.2; R power.prop.test), two-sided, "
                      "no continuity correction")  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """One arm of an experiment: ``n`` subscribers, ``successes`` of them did the thing."""

    name: str
    n: int
    successes: int

    def __post_init__(self) -> None:
        for field in ("n", "successes"):
            value = getattr(self, field)
            try:
                whole = operator.index(value)  # ints and numpy integers; not 3.0, not True
            except TypeError:
                whole = -1
            if isinstance(value, bool) or whole < 0:
                raise InputError(f"arm {self.name}: {field} {value!r} is not a whole number "
                                 "of 0 or more")  # fmt: skip
            object.__setattr__(self, field, whole)
        if self.successes > self.n:
            raise InputError(f"arm {self.name}: {self.successes} successes out of n = "
                             f"{self.n}: successes cannot exceed n")  # fmt: skip

    @property
    def rate(self) -> float | None:
        """successes / n; None for an arm with no subscribers."""
        return self.successes / self.n if self.n else None


@dataclass(frozen=True)
class Comparison:
    """A treated arm against the control, at ``alpha`` (intervals are 1 − alpha)."""

    treated: Arm
    control: Arm
    alpha: float
    treated_interval: tuple[float, float]  # Wilson
    control_interval: tuple[float, float]  # Wilson
    diff: float  # treated rate − control rate
    diff_interval: tuple[float, float]  # Newcombe hybrid score
    lift: float | None  # diff / control rate; None when the control rate is 0
    z: float
    p_value: float  # two-sided, pooled two-proportion z-test
    p_adjusted: float  # after the correction for several comparisons (= p_value for one)

    @property
    def significant(self) -> bool:
        return self.p_adjusted < self.alpha


@dataclass(frozen=True)
class Uplift:
    """What treating ``comparison.treated`` added over the hold-out: ``conversions`` more
    successes than the treated arm would have had untreated, with its interval."""

    comparison: Comparison
    conversions: float
    interval: tuple[float, float]

    @property
    def rate(self) -> float:
        """The incremental rate (the difference of rates)."""
        return self.comparison.diff


@dataclass(frozen=True)
class Comparisons:
    """Every non-empty arm against ``control``; ``empty`` names the arms with n = 0."""

    control: Arm
    comparisons: tuple[Comparison, ...]
    empty: tuple[str, ...]
    alpha: float
    correction: str


@dataclass(frozen=True)
class SampleSize:
    """Subscribers an experiment needs to detect ``expected`` against ``baseline``.

    ``n_control`` and ``n_treated`` (each treated arm) are what the test needs; ``total`` is
    the audience to draw: the arms added up, or, with ``holdout_share``, the audience whose
    hold-out share reaches ``n_control`` (and whose rest covers the treated arms)."""

    baseline: float
    expected: float
    alpha: float
    alpha_per_comparison: float
    power: float
    arms: int
    ratio: float  # treated : control, per treated arm
    n_control: int
    n_treated: int
    total: int
    holdout_share: float | None
    method: str = SAMPLE_SIZE_METHOD

    @property
    def diff(self) -> float:
        return self.expected - self.baseline

    @property
    def lift(self) -> float:
        return self.diff / self.baseline


def wilson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval (1 − alpha) of ``successes`` out of ``n``.

    SciPy's (``binomtest(...).proportion_ci(method="wilson")``) rather than our own: it is
    the textbook formula, kept and tested upstream."""
    try:
        n, successes = operator.index(n), operator.index(successes)
    except TypeError:
        raise InputError(f"wilson: n {n!r} and successes {successes!r} must be whole "
                         "numbers") from None  # fmt: skip
    if not 0 <= successes <= n or n == 0:
        raise InputError(f"wilson: {successes} successes out of n = {n}: need n > 0 and "
                         "0 <= successes <= n")  # fmt: skip
    ci = binomtest(successes, n).proportion_ci(confidence_level=1 - _alpha(alpha),
                                               method="wilson")  # fmt: skip
    return float(ci.low), float(ci.high)


def compare(treated: Arm, control: Arm, *, alpha: float = 0.05) -> Comparison:
    """``treated`` against ``control``: rates, difference with its Newcombe interval, lift,
    and the pooled two-proportion z-test. An arm with n = 0 is an error naming it."""
    _require_data(control, role="the control")
    _require_data(treated)
    alpha = _alpha(alpha)
    p1, p0 = treated.successes / treated.n, control.successes / control.n
    (l1, u1), (l0, u0) = wilson(treated.successes, treated.n, alpha), \
        wilson(control.successes, control.n, alpha)  # fmt: skip
    diff = p1 - p0
    # Newcombe's hybrid score interval: each side combines the two Wilson half-widths that
    # point that way. Written here because SciPy has none (statsmodels' "newcomb" is the same).
    low = max(-1.0, diff - math.hypot(p1 - l1, u0 - p0))
    high = min(1.0, diff + math.hypot(u1 - p1, p0 - l0))
    z, p = _z_test(treated, control)
    return Comparison(treated, control, alpha, (l1, u1), (l0, u0), diff, (low, high),
                      diff / p0 if p0 > 0 else None, z, p, p)  # fmt: skip


def uplift(treated: Arm, holdout: Arm, *, alpha: float = 0.05) -> Uplift:
    """Incremental successes of ``treated`` over a ``holdout`` that received nothing:
    (treated rate − hold-out rate) × treated n, the interval scaled the same way."""
    return uplift_of(compare(treated, holdout, alpha=alpha))


def uplift_of(comparison: Comparison) -> Uplift:
    """The uplift of an existing comparison (for one made by :func:`compare_many`)."""
    n = comparison.treated.n
    low, high = comparison.diff_interval
    return Uplift(comparison, comparison.diff * n, (low * n, high * n))


def compare_many(arms: Sequence[Arm], *, control: str | None = None, alpha: float = 0.05,
                 correction: Correction = "holm") -> Comparisons:  # fmt: skip
    """Every arm against ``control`` (default: the first arm), p-values adjusted for the
    number of comparisons made. Arms with n = 0 are listed in ``empty``, not compared."""
    names = [a.name for a in arms]
    if len(arms) < 2:
        raise InputError("an experiment needs at least two arms "
                         f"(got {', '.join(names) or 'none'})")
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise InputError(f"arm {twice[0]} is given more than once")
    if correction not in CORRECTIONS:
        raise InputError(f"correction {correction!r}: use {', '.join(CORRECTIONS)}")
    name = names[0] if control is None else control
    if name not in names:
        raise InputError(f"control arm {name!r} is not one of the arms ({', '.join(names)})")
    base = arms[names.index(name)]
    _require_data(base, role="the control")
    others = [a for a in arms if a.name != name]
    done = [compare(a, base, alpha=alpha) for a in others if a.n > 0]
    adjusted = adjust([c.p_value for c in done], method=correction)
    done = [replace(c, p_adjusted=p) for c, p in zip(done, adjusted, strict=True)]
    empty = tuple(a.name for a in others if a.n == 0)
    return Comparisons(base, tuple(done), empty, _alpha(alpha), correction)


def adjust(p_values: Sequence[float], *, method: Correction = "holm") -> list[float]:
    """The p-values adjusted for multiple comparisons, in the order given.

    Holm's step-down by hand: SciPy only has Benjamini-Hochberg (``false_discovery_control``)
    and a dozen lines do not justify statsmodels. The i-th smallest p (from 0) is multiplied
    by m − i, then made non-decreasing in that order and capped at 1."""
    m = len(p_values)
    if method == "none":
        return [float(p) for p in p_values]
    if method == "bonferroni":
        return [min(1.0, float(p) * m) for p in p_values]
    if method != "holm":
        raise InputError(f"correction {method!r}: use {', '.join(CORRECTIONS)}")
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        running = max(running, min(1.0, float(p_values[i]) * (m - rank)))
        out[i] = running
    return out


def sample_size(baseline_rate: float, *, min_lift: float | None = None,
                min_diff: float | None = None, alpha: float = 0.05, power: float = 0.8,
                ratio: float | None = None, arms: int = 2,
                holdout_share: float | None = None) -> SampleSize:  # fmt: skip
    """Subscribers per arm to detect a relative ``min_lift`` or an absolute ``min_diff``
    over ``baseline_rate`` with a two-sided test at ``alpha`` and ``power``.

    With ``arms`` > 2 every treated arm is tested against the control at alpha / (arms − 1)
    (Bonferroni, the worst case of Holm). ``ratio`` is treated : control per treated arm;
    ``holdout_share`` (0 < share < 1, the control is a hold-out of that share of the
    audience, the rest split evenly over the treated arms) sets the ratio instead."""
    p0 = _rate(baseline_rate, "--baseline")
    p1 = _expected(p0, min_lift, min_diff)
    alpha, power = _alpha(alpha), _share(power, "--power")
    if isinstance(arms, bool) or not isinstance(arms, int) or arms < 2:
        raise InputError(f"--arms: {arms!r}: an experiment has 2 arms or more (control included)")
    k = arms - 1
    if holdout_share is not None:
        if ratio is not None:
            raise InputError("--ratio and --holdout both set the group sizes: give one")
        share = _share(holdout_share, "--holdout", what="a hold-out share",
                       why=" (0% holds no one out, 100% treats no one)")
        ratio = (1 - share) / (share * k)
    elif ratio is None:
        ratio = 1.0
    elif not (math.isfinite(ratio) and ratio > 0):
        raise InputError(f"--ratio: {ratio!r} is not a positive treated:control ratio")
    exact = _n_control(p0, p1, alpha / k, power, ratio)
    n_control, n_treated = _ceil(exact), _ceil(exact * ratio)
    total = n_control + k * n_treated
    if holdout_share is not None:
        total = max(_ceil(n_control / holdout_share), _ceil(k * n_treated / (1 - holdout_share)))
    return SampleSize(p0, p1, alpha, alpha / k, power, arms, ratio, n_control, n_treated, total,
                      holdout_share)  # fmt: skip


def power(baseline_rate: float, expected_rate: float, *, n_control: int,
          n_treated: int | None = None, alpha: float = 0.05) -> float:  # fmt: skip
    """The power of the two-sided pooled z-test with these groups (the far tail ignored,
    as R's ``power.prop.test`` does by default): :func:`sample_size` inverted."""
    p0, p1 = _rate(baseline_rate, "--baseline"), _rate(expected_rate, "expected rate")
    n1 = n_control if n_treated is None else n_treated
    if n_control <= 0 or n1 <= 0:
        raise InputError("power: both groups need at least one subscriber")
    r = n1 / n_control
    a, b = _spreads(p0, p1, r)
    z_alpha = norm.isf(_alpha(alpha) / 2)
    return float(norm.cdf((abs(p1 - p0) * math.sqrt(n_control) - z_alpha * a) / b))


def _n_control(p0: float, p1: float, alpha: float, power: float, ratio: float) -> float:
    """Fleiss, Tytun & Ury (1980) without continuity correction; for ratio 1 it is
    ``(z_a·sqrt(2·p̄q̄) + z_b·sqrt(p0q0 + p1q1))² / (p1 − p0)²``."""
    a, b = _spreads(p0, p1, ratio)
    z_alpha, z_beta = norm.isf(alpha / 2), norm.ppf(power)
    return ((z_alpha * a + z_beta * b) / (p1 - p0)) ** 2


def _spreads(p0: float, p1: float, r: float) -> tuple[float, float]:
    """The standard deviations (× sqrt(n_control)) of the difference under H0 (pooled rate)
    and under H1, for treated = r × control."""
    pooled = (p0 + r * p1) / (1 + r)
    return (math.sqrt(pooled * (1 - pooled) * (1 + 1 / r)),
            math.sqrt(p0 * (1 - p0) + p1 * (1 - p1) / r))  # fmt: skip


def _z_test(treated: Arm, control: Arm) -> tuple[float, float]:
    """The pooled two-proportion z statistic and its two-sided p-value (the square of z is
    the uncorrected chi-square of the 2×2 table). Both arms all-zero or all-one: z 0, p 1."""
    pooled = (treated.successes + control.successes) / (treated.n + control.n)
    variance = pooled * (1 - pooled) * (1 / treated.n + 1 / control.n)
    if variance <= 0:
        return 0.0, 1.0
    z = (treated.successes / treated.n - control.successes / control.n) / math.sqrt(variance)
    return z, float(2 * norm.sf(abs(z)))


def _require_data(arm: Arm, *, role: str = "") -> None:
    if arm.n == 0:
        who = f"arm {arm.name}" + (f" ({role})" if role else "")
        raise InputError(f"{who} has no subscribers (n = 0): nothing to compare yet")


def _expected(p0: float, min_lift: float | None, min_diff: float | None) -> float:
    if (min_lift is None) == (min_diff is None):
        raise InputError("give the smallest effect worth detecting: --lift (relative, e.g. "
                         "10%) or --diff (absolute, e.g. 0.002), one of them")  # fmt: skip
    option, value = ("--lift", min_lift) if min_lift is not None else ("--diff", min_diff)
    if not math.isfinite(value) or value == 0:
        raise InputError(f"{option}: {value!r}: the effect to detect cannot be 0")
    p1 = p0 * (1 + value) if option == "--lift" else p0 + value
    if not 0 < p1 < 1:
        raise InputError(f"{option}: {value!r} over a baseline of {p0:g} gives a rate of "
                         f"{p1:g}, which is not between 0 and 1")  # fmt: skip
    return p1


def _rate(value: float, option: str) -> float:
    return _share(value, option, what="a rate")


def _share(value: float, option: str, *, what: str = "a share", why: str = "") -> float:
    """``value`` if strictly between 0 and 1, else an error naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        shown = f"{value:g}" if isinstance(value, int | float) else repr(value)
        raise InputError(f"{option}: {shown} is not {what} strictly between 0 and 1{why}")
    return float(value)


def _alpha(alpha: float) -> float:
    return _share(alpha, "--alpha", what="a significance level")


def _ceil(x: float) -> int:
    """Round up, forgiving float noise (2000.0000000001 subscribers is 2000)."""
    return math.ceil(x - 1e-9)


__all__ = ["CORRECTIONS", "Arm", "Comparison", "Comparisons", "SampleSize", "Uplift", "adjust",
           "compare", "compare_many", "power", "sample_size", "uplift", "uplift_of", "wilson"]
