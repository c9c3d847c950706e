"""The figures of ``jingxin bench behaviour``: each claim of issue #16 measured from the
event log (``analytics.metrics``) with ``analytics.stats`` - rates with Wilson intervals,
differences with Newcombe intervals and the pooled two-proportion z-test, uplift against
each campaign's own hold-out.

Two uplifts (incremental rates against two different hold-outs) are compared by a normal
approximation: each one's standard error is read back from its 95 % Newcombe interval
(half its width over 1.96), the difference gets ``± 1.96 √(se₁² + se₂²)`` and a two-sided
p-value. ``analytics.stats`` has no test for a difference of differences; this one is
stated as approximate wherever it is printed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from jingxin.analytics.stats import Arm

    from jingxin.bench.behaviour_world import Sent
    from jingxin.data.store.engine import Store

Z95 = 1.959963984540054
ALPHA = 0.05


# Orders count for an experiment within this long of the assignment (results per arm count
# by assignment, docs/analytics.md). The campaigns here are a day apart and the simulated
# subscribers act within hours, so one day keeps each campaign's orders its own; the
# 7-day default would let the next days' campaigns, sent to the same people (hold-outs
# included), add their orders to both arms of the earlier ones.
ATTRIBUTION_DAYS = 1.0


def _stats() -> Any:
    """jingxin.analytics.stats, imported on first use: it imports scipy.stats (a second),
    and every `jingxin` command imports this module when the bench commands register."""
    from jingxin.analytics import stats

    return stats


def _round(value: float | None, digits: int = 5) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _interval(pair: tuple[float, float], digits: int = 5) -> list[float | None]:
    return [_round(pair[0], digits), _round(pair[1], digits)]


def share(successes: int, n: int) -> dict[str, Any]:
    """successes / n with its Wilson 95 % interval."""
    if not n:
        return {"successes": successes, "n": 0, "rate": None, "ci": [None, None]}
    return {"successes": successes, "n": n, "rate": _round(successes / n),
            "ci": _interval(_stats().wilson(successes, n, ALPHA))}


def comparison(a: Arm, b: Arm) -> dict[str, Any]:
    """``a`` against ``b``: difference with its Newcombe interval, lift, z-test p."""
    if not a.n or not b.n:
        return {"diff": None, "ci": [None, None], "p": None, "lift": None}
    c = _stats().compare(a, b, alpha=ALPHA)
    return {"diff": _round(c.diff), "ci": _interval(c.diff_interval), "p": _round(c.p_value, 6),
            "lift": _round(c.lift, 4), "significant": bool(c.significant)}  # fmt: skip


def difference_of_uplifts(one: dict[str, Any], two: dict[str, Any]) -> dict[str, Any]:
    """``one``'s incremental rate minus ``two``'s (module docstring: approximate)."""
    if one.get("incremental_rate") is None or two.get("incremental_rate") is None:
        return {"diff": None, "ci": [None, None], "p": None, "method": "normal approximation"}
    ses = [(u["incremental_rate_ci"][1] - u["incremental_rate_ci"][0]) / (2 * Z95)
           for u in (one, two)]  # fmt: skip
    diff = one["incremental_rate"] - two["incremental_rate"]
    se = math.hypot(*ses)
    p = math.erfc(abs(diff) / se / math.sqrt(2)) if se > 0 else (0.0 if diff else 1.0)
    return {"diff": _round(diff), "ci": _interval((diff - Z95 * se, diff + Z95 * se)),
            "p": _round(p, 6), "ratio": _round(one["incremental_rate"] / two["incremental_rate"], 3)
            if two["incremental_rate"] > 0 else None,
            "method": "normal approximation from the two Newcombe intervals"}  # fmt: skip


# --------------------------------------------------------------------------- claim 1


def campaign_outcome(store: Store, sent: Sent) -> dict[str, Any]:
    """A campaign with a hold-out: orders per message sent, and its uplift in orders
    (treated rate − hold-out rate over the assigned, and the incremental orders)."""
    from jingxin.analytics.metrics import arm_table

    rows = arm_table(store, sent.experiment, attribution_days=ATTRIBUTION_DAYS).to_pylist()
    treated = [r for r in rows if not r["holdout"]]
    held = [r for r in rows if r["holdout"]]
    total = {k: sum(r[k] for r in treated) for k in ("assigned", "sent", "delivered",
                                                     "clicked", "ordered")}  # fmt: skip
    out: dict[str, Any] = {
        "campaign_id": sent.campaign_id, "audience": sent.audience, **total,
        "held_out": sum(r["assigned"] for r in held),
        "held_out_ordered": sum(r["ordered"] for r in held),
        "orders_per_sent": share(total["ordered"], total["sent"]),
    }  # fmt: skip
    if not held or not out["held_out"] or not total["assigned"]:
        return {**out, "incremental_rate": None, "incremental_rate_ci": [None, None],
                "incremental_orders": None, "incremental_orders_ci": [None, None]}  # fmt: skip
    stats = _stats()
    lift = stats.uplift(stats.Arm("treated", total["assigned"], total["ordered"]),
                        stats.Arm("holdout", out["held_out"], out["held_out_ordered"]), alpha=ALPHA)
    per_thousand = 1000 / total["sent"] if total["sent"] else math.nan
    return {**out, "holdout_rate": share(out["held_out_ordered"], out["held_out"]),
            "incremental_rate": _round(lift.rate), "incremental_rate_ci": _interval(
                lift.comparison.diff_interval), "p_vs_holdout": _round(lift.comparison.p_value, 6),
            "incremental_orders": _round(lift.conversions, 1),
            "incremental_orders_ci": _interval(lift.interval, 1),
            "incremental_orders_per_1000_sent": _round(lift.conversions * per_thousand, 2)}  # fmt: skip


def targeting(store: Store, targeted: Sent, blast: Sent) -> dict[str, Any]:
    """Claim 1: the composite model's audience against a random blast of the same size."""
    t, b = campaign_outcome(store, targeted), campaign_outcome(store, blast)
    per_sent = comparison(_stats().Arm("targeted", t["sent"], t["ordered"]),
                          _stats().Arm("blast", b["sent"], b["ordered"]))  # fmt: skip
    incremental = difference_of_uplifts(t, b)
    wins = bool(per_sent.get("significant") and per_sent["diff"] > 0
                and incremental["p"] is not None and incremental["p"] < ALPHA
                and incremental["diff"] > 0)  # fmt: skip
    return {"targeted": t, "blast": b, "orders_per_sent_difference": per_sent,
            "incremental_rate_difference": incremental, "targeted_wins": wins}


# --------------------------------------------------------------------------- claim 2


def learned(hours: pa.Table, window: tuple[int, int]) -> dict[str, Any]:
    """What ``sendtime.learn_hours`` learnt: subscribers with hours of their own, and the
    population's best hour inside the window (``[first, last]`` local hours)."""
    import json

    from jingxin.analytics.sendtime import POPULATION_KEY

    meta = hours.schema.metadata or {}
    shares = np.asarray(json.loads(meta[POPULATION_KEY])) if POPULATION_KEY in meta else None
    responses = hours.column("responses").to_numpy(zero_copy_only=False)
    inside = None
    if shares is not None and shares.sum() > 0:
        allowed = np.arange(window[0], window[1] + 1)
        inside = int(allowed[np.argmax(shares[allowed])])
    return {"subscribers": hours.num_rows, "responses": int(responses.sum()),
            "with_3_or_more": int((responses >= 3).sum()),
            "population_best_hour_in_window": inside}  # fmt: skip


def send_time(store: Store, split: Sent, *, hours: pa.Table, window: tuple[int, int],
              seed: int, zone: Any) -> dict[str, Any]:  # fmt: skip
    """Claim 2: the best-time arm against the random-time arm of one campaign, on clicks,
    replies (not counting unsubscribes), orders, and any of the three; and, per arm and
    for subscribers with and without learnt hours of their own, how often the message
    arrived near the subscriber's latent peak hour (the simulator's truth)."""
    from jingxin.analytics.metrics import subscriber_outcomes

    people = subscriber_outcomes(store, split.experiment,
                                 attribution_days=ATTRIBUTION_DAYS).to_pandas()
    people["replied"] = people["replied"] & ~people["opted_out"]
    people["responded"] = people["clicked"] | people["replied"] | people["ordered"]
    near = near_peak(store, split.campaign_id, seed=seed, zone=zone)
    people["near_peak"] = people["msisdn"].map(near)
    people["own_hours"] = people["msisdn"].isin(set(hours.column("msisdn").to_pylist()))
    arms: dict[str, dict[str, Any]] = {}
    by_history: dict[str, dict[str, Any]] = {}
    for arm in ("best-time", "random-time"):
        mine = people[people["arm"] == arm]
        arms[arm] = {"assigned": len(mine), "delivered": int(mine["delivered"].sum()),
                     "at_latent_peak": _mean(mine["near_peak"]),
                     **{k: share(int(mine[k].sum()), len(mine))
                        for k in ("clicked", "replied", "ordered", "responded")}}  # fmt: skip
        by_history[arm] = {
            group: {"assigned": len(part), "at_latent_peak": _mean(part["near_peak"]),
                    "responded": share(int(part["responded"].sum()), len(part))}
            for group, part in (("own_hours", mine[mine["own_hours"]]),
                                ("population_hour", mine[~mine["own_hours"]]))}  # fmt: skip
    compared = {}
    for metric in ("responded", "clicked", "replied", "ordered"):
        best, rand = (arms[a][metric] for a in ("best-time", "random-time"))
        compared[metric] = comparison(_stats().Arm("best-time", best["n"], best["successes"]),
                                      _stats().Arm("random-time", rand["n"], rand["successes"]))
    primary = compared["responded"]
    return {"learned": learned(hours, window), "arms": arms, "comparisons": compared,
            "by_history": by_history,
            "best_time_wins": bool(primary.get("significant") and primary["diff"] > 0)}


def _mean(values: Any) -> float | None:
    values = values.dropna()
    return _round(float(values.astype(float).mean()), 4) if len(values) else None


def near_peak(store: Store, campaign_id: int, *, seed: int, zone: Any) -> dict[str, bool]:
    """Per number messaged by the campaign: did the message arrive within
    ``peak_width`` hours of the subscriber's latent peak hour (what the plan could only
    estimate)?"""
    from sqlalchemy import select

    from jingxin.data.store.models import Message
    from jingxin.smsc.reactions import DEFAULT_PARAMS, peak_hours

    with store.sessions() as session:
        rows = session.execute(select(Message.msisdn, Message.submitted_at).where(
            Message.campaign_id == campaign_id, Message.submitted_at.is_not(None))).all()
    if not rows:
        return {}
    peaks = peak_hours([r.msisdn for r in rows], seed=seed).astype(int)
    arrived = np.array([r.submitted_at.astimezone(zone).hour for r in rows])
    gap = np.abs(arrived - peaks) % 24
    near = np.minimum(gap, 24 - gap) <= DEFAULT_PARAMS.peak_width
    return {r.msisdn: bool(n) for r, n in zip(rows, near, strict=True)}


# --------------------------------------------------------------------------- claim 3


def evaluation(model: Any) -> dict[str, Any]:
    e = model.evaluation
    return {"qini": _round(e.qini, 4), "auuc": _round(e.auuc, 5),
            "auuc_random": _round(e.auuc_random, 5), "test_uplift": _round(e.test_uplift),
            "top_decile_uplift": _round(e.top_uplift), "test_rows": e.test_rows,
            "test_treated": e.test_treated, "test_control": e.test_control,
            "train_rows": e.train_rows}  # fmt: skip


def known_uplift(warehouse: Any, numbers: list[str], *, seed: int, hour: int) -> np.ndarray:
    """The simulator's own incremental order probability of each number for the data offer
    arriving at local ``hour`` (what it would do treated minus untreated; annoyed
    subscribers order only at the base rate)."""
    from jingxin.smsc.reactions import chances, hour_factor, peak_hours, relevance
    from jingxin.smsc.subscribers import profiles

    table = profiles(warehouse, numbers)
    factor = hour_factor(peak_hours(numbers, seed=seed), np.full(len(numbers), hour))
    odds = chances(relevance(table, "data"), factor=factor,
                   complaint_sensitive=table.column("complaint_sensitive").to_numpy(),
                   electronic=table.column("electronic").to_numpy())  # fmt: skip
    calm = 1.0 - odds.complain - odds.opt_out
    return calm * (odds.order_treated - odds.order_base)


def fresh(store: Store, warehouse: Any, top: Sent, rand: Sent, *, top_numbers: list[str],
          random_numbers: list[str], everyone: list[str], seed: int, hour: int) -> dict[str, Any]:  # fmt: skip
    """Claim 3 on a fresh campaign: the model's top decile against a random decile, each
    with its own hold-out; and the simulator's known incremental probabilities of both."""
    t, r = campaign_outcome(store, top), campaign_outcome(store, rand)
    known = known_uplift(warehouse, everyone, seed=seed, hour=hour)
    by_number = dict(zip(everyone, known, strict=True))
    size = len(top_numbers)
    oracle = float(np.sort(known)[::-1][:size].mean()) if size else None
    diff = difference_of_uplifts(t, r)
    return {"top_decile": t, "random_decile": r, "incremental_rate_difference": diff,
            "known": {"top_decile": _round(np.mean([by_number[n] for n in top_numbers])),
                      "random_decile": _round(np.mean([by_number[n] for n in random_numbers])),
                      "everyone": _round(float(known.mean())), "best_possible_decile": _round(oracle),
                      "source": "smsc.reactions probabilities at the send hour"},
            "model_wins": bool(diff["p"] is not None and diff["p"] < ALPHA and diff["diff"] > 0)}
