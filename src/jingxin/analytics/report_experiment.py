"""A running experiment's results: its arms against the hold-out, as ``jingxin experiment
results`` prints them and the API's ``GET /experiments/{kind}/{id}`` answers them.

:func:`experiment_results` brings the event log up to date
(:func:`~jingxin.analytics.events.collect`), counts each arm
(:func:`~jingxin.analytics.metrics.arm_table`: assigned, and per outcome the distinct
subscribers) and compares every arm with the hold-out - or, without one, with the first
arm, which measures no uplift (nothing untreated to count against) - on one metric, with
Wilson intervals for the rates, Newcombe intervals for the differences and p-values
adjusted over the comparisons (:mod:`jingxin.analytics.stats`). :meth:`Results.as_dict`
is the JSON both print; it names no subscriber.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.analytics.stats import Arm, Comparisons
    from jingxin.config import Settings
    from jingxin.data.store.engine import Store

EXPERIMENT_SOURCES = {"campaign": "ID", "journey": "NAME", "fence": "CODE"}
RESULT_METRICS = ("ordered", "clicked", "replied", "delivered", "opted_out", "complained",
                  "failed", "sent")  # fmt: skip


def experiment_name(source: str, name: str) -> str:
    """``campaign 12`` as ``campaign:12``; a source or a campaign id that cannot be, refused."""
    if source not in EXPERIMENT_SOURCES:
        forms = " | ".join(f"{s} {w}" for s, w in EXPERIMENT_SOURCES.items())
        raise InputError(f"{source!r}: say what ran the experiment: {forms}")
    name = name.strip()
    if not name:
        raise InputError(f"{source} {EXPERIMENT_SOURCES[source]}: empty")
    if source == "campaign" and not re.fullmatch(r"[0-9]{1,18}", name):
        raise InputError(f"campaign ID: {name!r} is not a campaign id (a whole number)")
    return f"{source}:{name}"


def check_options(*, metric: str, correction: str) -> None:
    """An unknown metric or correction is an InputError naming the option."""
    from jingxin.analytics.stats import CORRECTIONS

    if metric not in RESULT_METRICS:
        raise InputError(f"--metric: {metric!r}: use one of {', '.join(RESULT_METRICS)}")
    if correction not in CORRECTIONS:
        raise InputError(f"--correction: {correction!r}: use {', '.join(CORRECTIONS)}")


@dataclass
class Results:
    """An experiment's arms (``rows``: :func:`~jingxin.analytics.metrics.arm_table`'s), the
    counts compared on ``metric`` (``arms``), the comparison (None when there is nothing
    to compare yet, ``notes`` say why) and the hold-out arm's name, if any."""

    experiment: str
    metric: str
    alpha: float
    correction: str
    holdout: str | None
    notes: list[str]
    rows: list[dict[str, Any]]
    arms: list[Arm]
    comparison: Comparisons | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment, "metric": self.metric, "alpha": self.alpha,
            "correction": self.correction, "holdout": self.holdout,
            "uplift_measurable": self.holdout is not None, "notes": self.notes,
            "arms": self.rows,
            "comparison": None if self.comparison is None else comparison_json(
                self.metric, self.arms, self.comparison, self.holdout is not None),
        }  # fmt: skip


def experiment_results(store: Store, *, experiment: str, settings: Settings,
                       metric: str = "ordered", alpha: float = 0.05,
                       correction: str = "holm") -> Results:  # fmt: skip
    """The results of ``experiment`` (``campaign:12``) on ``metric``; an unknown metric,
    correction or experiment is an InputError naming it."""
    from jingxin.analytics.events import collect
    from jingxin.analytics.metrics import arm_table
    from jingxin.analytics.stats import compare_many

    check_options(metric=metric, correction=correction)
    collect(store, attribution_days=settings.analytics.attribution_days)
    rows = arm_table(store, experiment, tariff=settings.analytics.tariff,
                     attribution_days=settings.analytics.attribution_days).to_pylist()
    arms, notes = result_arms(rows, metric)
    holdout = next((r["arm"] for r in rows if r["holdout"]), None)
    control = holdout or next((r["arm"] for r in rows), None)
    if holdout is None:
        notes.append(f"uplift is not measurable: {experiment} has no hold-out (nobody was held "
                     f"back from the messages, so there is no untreated baseline to count "
                     f"incremental {metric} against); arms are compared with arm {control}")
    result = None
    control_arm = next((a for a in arms if a.name == control), None)
    if len(arms) < 2:
        notes.append(f"only arm {control}: nothing to compare it with")
    elif control_arm is None or control_arm.n == 0:
        role = "hold-out" if holdout else "control"
        notes.append(f"arm {control} (the {role}) is empty: no subscribers assigned, so no "
                     "arm can be compared yet")  # fmt: skip
    else:
        result = compare_many(arms, control=control, alpha=alpha,
                              correction=correction)  # type: ignore[arg-type]
    return Results(experiment=experiment, metric=metric, alpha=alpha, correction=correction,
                   holdout=holdout, notes=notes, rows=rows, arms=arms, comparison=result)


def result_arms(rows: list[dict[str, Any]], metric: str) -> tuple[list[Arm], list[str]]:
    """Each arm as counts (n = assigned, successes = subscribers with ``metric``), and the
    notes on arms whose counts needed a word."""
    from jingxin.analytics.stats import Arm

    arms, notes = [], []
    for row in rows:
        n, successes = row["assigned"], row[metric]
        if successes > n:
            notes.append(f"arm {row['arm']}: {successes:,} subscribers {metric} but "
                         f"{n:,} assigned (events of numbers not assigned): counted as {n:,}")
            successes = n
        arms.append(Arm(row["arm"], n, successes))
    return arms, notes


def comparison_json(metric: str | None, arms: list[Arm], result: Comparisons,
                    holdout: bool) -> dict[str, Any]:  # fmt: skip
    """Each arm's rate with its interval and, for a treated arm, the difference with the
    control, lift, p-values and (against a hold-out) the incremental successes."""
    from jingxin.analytics.stats import uplift_of, wilson

    by_name = {c.treated.name: c for c in result.comparisons}
    out = []
    for arm in arms:
        row: dict[str, Any] = {"arm": arm.name, "n": arm.n, "successes": arm.successes,
                               "rate": arm.rate}  # fmt: skip
        if arm.n == 0:
            out.append({**row, "role": "empty"})
            continue
        low, high = wilson(arm.successes, arm.n, result.alpha)
        row.update(rate_low=low, rate_high=high)
        c = by_name.get(arm.name)
        if c is None:
            out.append({**row, "role": "holdout" if holdout else "control"})
            continue
        row.update(role="treated", diff=c.diff, diff_low=c.diff_interval[0],
                   diff_high=c.diff_interval[1], lift=c.lift, z=c.z, p=c.p_value,
                   p_adjusted=c.p_adjusted, significant=c.significant)  # fmt: skip
        if holdout:
            up = uplift_of(c)
            row["incremental"] = {"successes": up.conversions, "low": up.interval[0],
                                  "high": up.interval[1]}  # fmt: skip
        out.append(row)
    return {"metric": metric, "control": result.control.name, "arms": out,
            "empty": list(result.empty)}  # fmt: skip
