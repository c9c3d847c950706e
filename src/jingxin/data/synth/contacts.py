"""Channel contacts and complaints: how subscribers reach the operator, and when they
complain.

Each subscriber leans physical (halls, hotline) or electronic (app, web, SMS business
hall), mostly by age. Contacts fall in the 180 days before as-of, complaints in the year
before: complaints are rare, more likely after bill shock or for the generally unhappy,
and a small complaint-sensitive group complains about marketing SMS. Every complaint also
appears as a contact with purpose 'complaint'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from jingxin.data.synth.calendar import Calendar
from jingxin.data.synth.columns import categorical, timestamps
from jingxin.data.synth.subscribers import Population
from jingxin.data.synth.usage import UsageSummary
from jingxin.data.warehouse.schema import CHANNEL_CONTACTS, CHANNELS, COMPLAINTS

PURPOSES = ("query", "order", "topup", "payment", "complaint", "other")
COMPLAINT_CATEGORIES = ("billing", "network", "marketing_sms", "service", "other")
# P(purpose) per channel (hall, app, web, hotline, sms_hall), complaints excluded.
PURPOSE_P = np.array([
    [0.30, 0.20, 0.20, 0.20, 0.0, 0.10],
    [0.45, 0.15, 0.25, 0.10, 0.0, 0.05],
    [0.50, 0.20, 0.10, 0.15, 0.0, 0.05],
    [0.65, 0.15, 0.00, 0.05, 0.0, 0.15],
    [0.55, 0.25, 0.10, 0.05, 0.0, 0.05],
])
MICROS_PER_DAY = 86_400_000_000
CONTACT_DAYS, COMPLAINT_DAYS = 180, 365


def _times(rng: np.random.Generator, pop: Population, row: np.ndarray, cal: Calendar,
           days: int, hours: tuple[int, int]) -> np.ndarray:
    """Uniform moments (whole seconds since the epoch) in the window, while the
    subscriber was on the network."""
    as_of = cal.as_of_day
    lo = np.maximum(pop.entry_day[row], as_of - days)
    hi = np.where(pop.churned_day[row] >= 0, pop.churned_day[row], as_of)
    day = lo + (rng.random(len(row), dtype=np.float32) * np.maximum(hi - lo, 1)).astype(np.int64)
    day = np.minimum(day, hi - 1)
    span = (hours[1] - hours[0]) * 3600
    return day * 86_400 + hours[0] * 3600 + rng.integers(0, span, len(row))


def _in_order(row: np.ndarray, sec: np.ndarray, cal: Calendar) -> np.ndarray:
    """Positions that sort by (row, time), through one int64 key (cheaper than lexsort)."""
    base = (cal.as_of_day - COMPLAINT_DAYS - 1) * 86_400
    key = row.astype(np.int64) * (COMPLAINT_DAYS + 2) * 86_400 + (sec - base)
    return np.argsort(key, kind="stable")


@dataclass(frozen=True)
class Complaints:
    """The complaints of one chunk: rows (position in the chunk), times, channels, and
    each subscriber's count of complaints other than about marketing SMS."""

    row: np.ndarray
    ts: np.ndarray
    channel: np.ndarray
    category: np.ndarray
    general: np.ndarray

    def table(self, pop: Population) -> pa.Table:
        return pa.Table.from_arrays(
            [pa.array(pop.subscriber_id[self.row]), timestamps(self.ts),
             categorical(COMPLAINT_CATEGORIES, self.category),
             categorical(CHANNELS, self.channel)], schema=COMPLAINTS.schema)


def complaints(rng: np.random.Generator, pop: Population, summary: UsageSummary,
               cal: Calendar) -> Complaints:
    """Complaints in the year before as-of."""
    n = len(pop)
    general = rng.poisson(0.15 * pop.unhappy + 0.08 * summary.bill_shock)
    marketing = np.where(pop.complaint_sensitive, rng.poisson(0.9, n), 0)
    row = np.concatenate([np.repeat(np.arange(n), general), np.repeat(np.arange(n), marketing)])
    billing = summary.bill_shock[row[: general.sum()]]
    cat_general = np.where(billing & (rng.random(len(billing)) < 0.7), 0,
                           rng.choice([0, 1, 3, 4], len(billing), p=[0.3, 0.35, 0.25, 0.1]))
    category = np.concatenate([cat_general, np.full(marketing.sum(), 2)])
    channel = rng.choice(5, len(row), p=[0.18, 0.10, 0.05, 0.60, 0.07])
    ts = _times(rng, pop, row, cal, COMPLAINT_DAYS, (8, 21))
    order = _in_order(row, ts, cal)
    return Complaints(row[order], ts[order] * 1_000_000, channel[order], category[order],
                      general)


def channel_contacts(rng: np.random.Generator, pop: Population, complained: Complaints,
                     cal: Calendar) -> pa.Table:
    n = len(pop)
    rate = 1.5 + 3.0 * pop.app_user + 2.0 * pop.prepaid
    count = rng.poisson(rate)
    row = np.repeat(np.arange(n), count)
    electronic = rng.random(len(row), dtype=np.float32) < pop.electronic[row]
    e_channel = np.where(pop.app_user[row], rng.choice([1, 2, 4], len(row), p=[0.7, 0.1, 0.2]),
                         rng.choice([2, 4], len(row), p=[0.4, 0.6]))
    p_channel = rng.choice([0, 3], len(row), p=[0.7, 0.3])
    channel = np.where(electronic, e_channel, p_channel)
    cum = np.cumsum(PURPOSE_P, axis=1)[channel]
    purpose = (rng.random(len(row))[:, None] > cum).sum(axis=1).clip(0, 5)
    ts = _times(rng, pop, row, cal, CONTACT_DAYS, (8, 22))
    recent = complained.ts >= (cal.as_of_day - CONTACT_DAYS) * MICROS_PER_DAY
    c_row, c_channel = complained.row[recent], complained.channel[recent]
    row = np.concatenate([row, c_row])
    ts = np.concatenate([ts, complained.ts[recent] // 1_000_000])
    channel = np.concatenate([channel, c_channel])
    purpose = np.concatenate([purpose, np.full(len(c_row), 4)])
    order = _in_order(row, ts, cal)
    return pa.Table.from_arrays(
        [pa.array(pop.subscriber_id[row[order]]), timestamps(ts[order] * 1_000_000),
         categorical(CHANNELS, channel[order]), categorical(PURPOSES, purpose[order])],
        schema=CHANNEL_CONTACTS.schema)
