"""Monthly usage, bills and top-ups: ``usage_monthly`` for the six months before as-of.

Each subscriber needs a fixed share of their starting plan's allowances (``data_fit``,
``voice_fit``: some chronically over, some far under), scaled by the month's season and
by a month-to-month lognormal wobble. Subscribers who are drifting away fade to 75%, 50%
and 30% in the last three months. A plan change (up- or downgrade) switches the plan_id
from its month on. Bills are the fee plus overage at the plan's tariffs plus international
day passes; prepaid subscribers top up what they spend, the price-sensitive in small
frequent amounts. Months before network entry, after a churn, and after a suspension
(barred: almost no usage) are shaped accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from jingxin.data.synth.calendar import USAGE_MONTHS, Calendar
from jingxin.data.synth.catalogue import PLAN_ARRAYS as P
from jingxin.data.synth.columns import categorical, dates
from jingxin.data.synth.subscribers import Population
from jingxin.data.warehouse.schema import USAGE_MONTHLY

DRIFT = np.array([1.0, 1.0, 1.0, 0.75, 0.5, 0.3])
INTL_DAY_PASS = 25.0  # yuan per day abroad without a roaming pack


@dataclass(frozen=True)
class UsageSummary:
    """What the labels need from the realised usage, one value per subscriber."""

    data_3m: np.ndarray  # mean data MB, last three months
    drop: np.ndarray  # last month <= half the three months before
    bill_shock: np.ndarray  # overage of at least half the fee in one of the last 3 months
    overage_3m: np.ndarray  # mean overage yuan, last three months
    small_topups: np.ndarray  # prepaid average top-up under 30 yuan
    intl_days: np.ndarray  # days abroad in six months
    over_plan: np.ndarray  # above an allowance in each of the last three months


def _live_fraction(pop: Population, cal: Calendar) -> np.ndarray:
    """Share of each month the subscriber was on the network and not barred."""
    start, end = cal.month_starts[None, :], cal.month_ends[None, :]
    lo = np.maximum(start, pop.entry_day[:, None])
    stop = np.where(pop.churned_day >= 0, pop.churned_day, np.iinfo(np.int64).max)
    stop = np.where(pop.suspended_since >= 0, pop.suspended_since, stop)
    hi = np.minimum(end, stop[:, None])
    return np.clip((hi - lo) / (end - start), 0.0, 1.0)


def _rows(pop: Population, cal: Calendar) -> np.ndarray:
    """Which (subscriber, month) rows exist: from the entry month until a churn."""
    start, end = cal.month_starts[None, :], cal.month_ends[None, :]
    after_entry = pop.entry_day[:, None] < end
    before_churn = (pop.churned_day < 0)[:, None] | (pop.churned_day[:, None] >= start)
    return after_entry & before_churn


def _rare_counts(rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
    """Poisson counts where most rates are tiny: a Bernoulli draw below 0.2 (the same to
    within 2%), a Poisson draw only for the rest, which is the costly part."""
    counts = (rng.random(rate.shape, dtype=np.float32) < rate).astype(np.int64)
    big = rate >= 0.2
    counts[big] = rng.poisson(rate[big])
    return counts


def _topups(rng: np.random.Generator, pop: Population, bill: np.ndarray, live: np.ndarray):
    small = pop.price_sensitivity > 0.35
    denom = np.where(small, rng.choice([10.0, 20.0, 30.0], len(pop)),
                     rng.choice([50.0, 100.0, 200.0], len(pop)))[:, None]
    # Nobody tops up 30 times a month: large bills take larger amounts.
    denom = np.maximum(denom, np.ceil(bill / 8.0 / 10.0) * 10.0)
    count = np.ceil(bill / denom) * (live > 0.05)
    count = np.where(pop.prepaid[:, None], count, 0).astype(np.int64)
    return count, count * denom


def generate(rng: np.random.Generator, pop: Population, cal: Calendar
             ) -> tuple[pa.Table, UsageSummary]:
    n, m = len(pop), USAGE_MONTHS
    seasons = cal.seasons()
    s_data = np.array([s.data for s in seasons])
    s_voice = np.array([s.voice for s in seasons])
    month = np.arange(m)[None, :]
    plan = np.where(month >= pop.change_month[:, None], pop.plan_end[:, None],
                    pop.plan_start[:, None])
    live = _live_fraction(pop, cal)
    drift = np.where(pop.disengaging[:, None], DRIFT[None, :], 1.0)
    wobble = np.exp(0.18 * rng.standard_normal((n, m), dtype=np.float32))
    data = pop.data_fit[:, None] * P.data_mb[pop.plan_start][:, None] * s_data * drift * wobble
    data = data * live
    voice = (pop.voice_fit[:, None] * P.voice_min[pop.plan_start][:, None] * s_voice * drift
             * np.exp(0.2 * rng.standard_normal((n, m), dtype=np.float32)) * live)
    sms_mean = (3.0 + 6.0 * (pop.age > 50))[:, None] * np.array([s.sms for s in seasons]) * live
    sms = rng.poisson(sms_mean)
    days = (cal.month_ends - cal.month_starts)[None, :]
    dom = np.minimum(_rare_counts(rng, pop.dom_rate[:, None]
                                  * [s.roam_domestic for s in seasons] * live), days)
    intl = np.minimum(_rare_counts(rng, pop.intl_rate[:, None] * 5.0
                                   * [s.roam_international for s in seasons] * live), days)
    overage = (np.maximum(data - P.data_mb[plan], 0) * P.over_mb[plan]
               + np.maximum(voice - P.voice_min[plan], 0) * P.over_min[plan]
               + np.maximum(sms - P.sms[plan], 0) * P.over_sms[plan])
    fee = P.fee[plan] * np.minimum(live * 1.2, 1.0)  # a partial month pays a prorated fee
    bill = np.round(fee + overage + intl * INTL_DAY_PASS, 2)
    top_count, top_amount = _topups(rng, pop, bill, live)
    rows = _rows(pop, cal)
    table = _table(pop, cal, rows, plan, data, voice, sms, bill, top_count, top_amount, dom, intl)
    return table, _summary(pop, rows, data, voice, plan, overage, top_count, top_amount, intl)


def _table(pop, cal, rows, plan, data, voice, sms, bill, top_count, top_amount, dom, intl):
    sub = np.broadcast_to(pop.subscriber_id[:, None], rows.shape)[rows]
    month = np.broadcast_to(cal.month_starts[None, :], rows.shape)[rows]
    arrays = [
        pa.array(sub), dates(month), categorical(P.ids, plan[rows]),
        pa.array(data[rows].astype(np.float64)), pa.array(voice[rows].astype(np.float64)),
        pa.array(sms[rows].astype(np.int32)), pa.array(bill[rows]),
        pa.array(top_count[rows].astype(np.int16)), pa.array(top_amount[rows].astype(float)),
        pa.array(dom[rows].astype(np.int16)), pa.array(intl[rows].astype(np.int16)),
    ]
    return pa.Table.from_arrays(arrays, schema=USAGE_MONTHLY.schema)


def _summary(pop, rows, data, voice, plan, overage, top_count, top_amount, intl):
    last3 = rows[:, 3:].all(axis=1)
    prev = data[:, 2:5].mean(axis=1)
    over = (data > P.data_mb[plan]) | (voice > P.voice_min[plan])
    fee = P.fee[plan]
    count3 = top_count[:, 3:].sum(axis=1)
    avg_top = np.where(count3 > 0, top_amount[:, 3:].sum(axis=1) / np.maximum(count3, 1), 0)
    return UsageSummary(
        data_3m=data[:, 3:].mean(axis=1),
        drop=rows.all(axis=1) & (prev > 0) & (data[:, 5] <= 0.5 * prev),
        bill_shock=last3 & (overage[:, 3:] >= 0.5 * fee[:, 3:]).any(axis=1),
        overage_3m=overage[:, 3:].mean(axis=1),
        small_topups=(count3 > 0) & (avg_top < 30.0),
        intl_days=intl.sum(axis=1),
        over_plan=last3 & over[:, 3:].all(axis=1),
    )
