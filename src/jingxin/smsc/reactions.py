"""How simulated subscribers react to a message - a SIMULATION, not real behaviour.

The model behind ``jingxin simulate responses`` (:mod:`jingxin.smsc.subscribers` applies
it to the store). Everything here is pure and vectorised: arrays in, arrays out.

* :func:`offer_kind`: what a message offers, from its words - ``data`` (流量, GB, 数据),
  ``discount`` (折, 优惠, 元), ``care`` (关怀, 生日, 周年), ``roaming`` (漫游), else
  ``generic``.
* :func:`relevance`: how well that offer fits each subscriber, in [0, 1], from warehouse
  features (:data:`PROFILE`): data-heavy users for data packs, price-sensitive users for
  discounts, long tenure for care, roaming days for roaming. Everybody keeps
  ``base_relevance``.
* :func:`peak_hours`: each subscriber's latent responsive hour, drawn once per number and
  seed from a daily curve with commute and evening peaks (:data:`HOUR_WEIGHTS`); a message
  that arrives within ``peak_width`` hours of it is acted on ``peak_boost`` times as often.
* :func:`chances`: the probability of each action given relevance, that boost, complaint
  sensitivity and the channel preference; :func:`react`: the draws, from uniforms hashed
  from (seed, experiment, action, number), so a run is deterministic and a subscriber's
  fate does not depend on who else is in the batch.

Orders happen without a message too (``order_base``, rising with relevance), so held-out
subscribers convert and the uplift of a campaign is treated minus base. A treated
subscriber orders if the same uniform falls below base + lift: whoever would have ordered
anyway still does (the draws are coupled, so uplift is never negative by chance for one
subscriber). Someone who complains or unsubscribes orders only at the base rate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

OFFER_KINDS = ("data", "discount", "care", "roaming", "generic")

# Checked in this order: a "10元5GB流量包" is a data offer that happens to name a price.
_KIND_WORDS = (
    ("roaming", ("漫游", "出境", "境外", "国际")),
    ("data", ("流量", "GB", "数据", "5G套餐")),
    ("care", ("关怀", "生日", "周年", "感谢您", "祝您")),
    ("discount", ("折", "优惠", "特惠", "立减", "元")),
)
_GB = re.compile(r"\d+\s*[GM]B?\b", re.IGNORECASE)

# A daily curve of when people read and act on texts (local time): morning commute, lunch,
# evening commute and the evening on the sofa; almost nobody at 3 am.
HOUR_WEIGHTS = (0.6, 0.25, 0.1, 0.1, 0.1, 0.3, 1.0, 3.0, 4.0, 2.5, 2.0, 2.0,
                3.0, 2.0, 1.5, 1.5, 2.0, 3.0, 4.0, 3.5, 4.5, 5.0, 3.0, 1.5)  # fmt: skip

# The warehouse features a profile holds (one row per number; see subscribers.profiles).
PROFILE = pa.schema([
    ("msisdn", pa.string()), ("known", pa.bool_()),
    ("product_preference", pa.string()), ("usage_trend", pa.string()),
    ("plan_fit", pa.string()), ("value_tier", pa.string()),
    ("price_sensitivity", pa.float64()), ("complaint_sensitive", pa.bool_()),
    ("tenure_months", pa.int32()), ("electronic", pa.bool_()), ("roaming_days", pa.float64()),
])  # fmt: skip
# What an unknown number (not in the warehouse) is taken to be: an average subscriber.
NEUTRAL = {"known": False, "product_preference": "balanced", "usage_trend": "stable",
           "plan_fit": "unknown", "value_tier": "mid", "price_sensitivity": 0.3,
           "complaint_sensitive": False, "tenure_months": 24, "electronic": False,
           "roaming_days": 0.0}  # fmt: skip


@dataclass(frozen=True)
class BehaviourParams:
    """Every rate of the simulated subscribers. Rates are per delivered message (orders:
    within the attribution window); ``r`` is relevance in [0, 1], ``h`` the hour factor
    (``peak_boost`` near the subscriber's peak hour, ``night_factor`` from 0 to 6 am,
    else 1). The defaults give a few percent of clicks and orders, as SMS marketing does,
    with effects large enough to measure on a few thousand subscribers."""

    base_relevance: float = 0.05  # everybody answers any offer a little
    peak_boost: float = 1.8  # read and acted on this much more often near the peak hour
    peak_width: int = 1  # hours either side of the peak that count as responsive
    night_factor: float = 0.6  # arriving 00:00-05:59 local (outside the peak)
    # click = (click_base + click_slope r) h, × electronic_boost for app / online users
    click_base: float = 0.02
    click_slope: float = 0.22
    electronic_boost: float = 1.3
    # reply = (reply_base + reply_slope r) h: "好的", "多少钱", "1"
    reply_base: float = 0.01
    reply_slope: float = 0.05
    # opt-out ("TD") and complaint: annoyance, larger when the offer does not fit
    opt_out_base: float = 0.004
    opt_out_misfit: float = 0.02  # × (1 - r)
    complain_base: float = 0.0005
    complain_misfit: float = 0.003  # × (1 - r)
    sensitive_opt_out: float = 2.0  # complaint-sensitive subscribers: opt-out ×
    sensitive_complain: float = 8.0  # and complaint ×
    # orders: base (no message) = order_base + order_base_slope r;
    # with the message, + (order_lift + order_lift_slope r²) h: a message sells what the
    # subscriber wants, and hardly anything else
    order_base: float = 0.002
    order_base_slope: float = 0.012
    order_lift: float = 0.001
    order_lift_slope: float = 0.12
    # minutes from arrival to a click or an MO: exponential with this mean (÷ h), capped
    delay_minutes: float = 20.0
    max_delay_minutes: float = 240.0


DEFAULT_PARAMS = BehaviourParams()


def offer_kind(text: str | None) -> str:
    """The kind of offer a message makes (:data:`OFFER_KINDS`), from its words."""
    if not text:
        return "generic"
    for kind, words in _KIND_WORDS:
        if any(word in text for word in words):
            return kind
        if kind == "data" and _GB.search(text):
            return kind
    return "generic"


def profile_table(rows: dict[str, list]) -> pa.Table:
    """A :data:`PROFILE` table from columns (missing ones filled with :data:`NEUTRAL`)."""
    n = len(rows["msisdn"])
    columns = {}
    for field in PROFILE:
        values = rows.get(field.name)
        if values is None:
            values = [NEUTRAL[field.name]] * n
        columns[field.name] = pa.array(values, field.type)
    return pa.table(columns, schema=PROFILE)


def affinity(profiles: pa.Table, kind: str) -> np.ndarray:
    """How much each subscriber wants an offer of ``kind``, in [0, 1], before the base."""
    n = profiles.num_rows

    def col(name: str) -> np.ndarray:
        return profiles.column(name).to_numpy(zero_copy_only=False)

    if kind == "data":
        pref = col("product_preference")
        share = np.select([pref == "data_heavy", pref == "balanced"], [1.0, 0.4], 0.1)
        return np.clip(0.7 * share + 0.15 * (col("usage_trend") == "surge")
                       + 0.15 * (col("plan_fit") == "over"), 0.0, 1.0)  # fmt: skip
    if kind == "discount":
        price = np.nan_to_num(col("price_sensitivity").astype(float), nan=0.3)
        return np.clip(0.8 * price + 0.2 * (col("value_tier") == "low"), 0.0, 1.0)
    if kind == "care":
        tenure = np.minimum(col("tenure_months").astype(float) / 60.0, 1.0)
        return np.clip(0.6 * tenure + 0.25 * (col("value_tier") == "high")
                       + 0.15 * ~col("complaint_sensitive").astype(bool), 0.0, 1.0)  # fmt: skip
    if kind == "roaming":
        return 1.0 - np.exp(-col("roaming_days").astype(float) / 5.0)
    if kind == "generic":
        return np.full(n, 0.3)
    raise ValueError(f"offer kind {kind!r}: expected one of {', '.join(OFFER_KINDS)}")


def relevance(profiles: pa.Table, kind: str, params: BehaviourParams = DEFAULT_PARAMS
              ) -> np.ndarray:  # fmt: skip
    """Relevance of an offer of ``kind`` to each subscriber of ``profiles``, in [0, 1]."""
    base = params.base_relevance
    return base + (1.0 - base) * affinity(profiles, kind)


def peak_hours(msisdns, *, seed: int) -> np.ndarray:
    """Each number's latent peak hour (0..23 local), from :data:`HOUR_WEIGHTS`; the same
    for a number and seed whatever the experiment."""
    from jingxin.analytics.assign import unit

    cdf = np.cumsum(HOUR_WEIGHTS) / sum(HOUR_WEIGHTS)
    u = np.nan_to_num(unit(msisdns, f"sim:{seed}:peak"), nan=0.5)
    return np.minimum(np.searchsorted(cdf, u, side="right"), 23).astype(np.int8)


def hour_factor(peaks: np.ndarray, arrival_hours: np.ndarray,
                params: BehaviourParams = DEFAULT_PARAMS) -> np.ndarray:  # fmt: skip
    """``peak_boost`` where a message arrived within ``peak_width`` hours of the peak
    (around midnight too), ``night_factor`` for other arrivals at 0-5 h, else 1. An
    arrival hour below 0 (no message) gives 1."""
    arrival = np.asarray(arrival_hours, dtype=np.int16)
    gap = np.abs(arrival - peaks.astype(np.int16)) % 24
    near = np.minimum(gap, 24 - gap) <= params.peak_width
    night = (arrival >= 0) & (arrival < 6)
    factor = np.where(near, params.peak_boost, np.where(night, params.night_factor, 1.0))
    return np.where(arrival < 0, 1.0, factor)


@dataclass(frozen=True)
class Chances:
    """Per subscriber: the probability of each action after one delivered message, and of
    an order without one (``order_base``)."""

    click: np.ndarray
    reply: np.ndarray
    opt_out: np.ndarray
    complain: np.ndarray
    order_base: np.ndarray
    order_treated: np.ndarray


def chances(r: np.ndarray, *, factor: np.ndarray, complaint_sensitive: np.ndarray,
            electronic: np.ndarray, params: BehaviourParams = DEFAULT_PARAMS) -> Chances:  # fmt: skip
    """The probabilities of :class:`Chances` (see :class:`BehaviourParams`)."""
    p = params
    r = np.asarray(r, dtype=float)
    sensitive = np.asarray(complaint_sensitive, dtype=bool)
    misfit = 1.0 - r
    click = (p.click_base + p.click_slope * r) * factor
    click = click * np.where(np.asarray(electronic, dtype=bool), p.electronic_boost, 1.0)
    opt_out = (p.opt_out_base + p.opt_out_misfit * misfit) * np.where(
        sensitive, p.sensitive_opt_out, 1.0)  # fmt: skip
    complain = (p.complain_base + p.complain_misfit * misfit) * np.where(
        sensitive, p.sensitive_complain, 1.0)  # fmt: skip
    base = p.order_base + p.order_base_slope * r
    lift = (p.order_lift + p.order_lift_slope * r * r) * factor
    return Chances(click=np.clip(click, 0, 0.95),
                   reply=np.clip((p.reply_base + p.reply_slope * r) * factor, 0, 0.5),
                   opt_out=np.clip(opt_out, 0, 0.2), complain=np.clip(complain, 0, 0.1),
                   order_base=np.clip(base, 0, 0.5),
                   order_treated=np.clip(base + lift, 0, 0.9))  # fmt: skip


@dataclass(frozen=True)
class Reactions:
    """What each subscriber did (booleans), and when after arrival (minutes)."""

    clicked: np.ndarray
    replied: np.ndarray
    opted_out: np.ndarray
    complained: np.ndarray
    ordered: np.ndarray
    click_delay: np.ndarray
    mo_delay: np.ndarray


def react(msisdns, *, odds: Chances, treated: np.ndarray, factor: np.ndarray,
          experiment: str, seed: int, params: BehaviourParams = DEFAULT_PARAMS) -> Reactions:  # fmt: skip
    """Draw the reactions: treated subscribers may click, send one MO (a complaint, else an
    opt-out, else a reply: one uniform over the three) and order; the rest may order at
    the base rate. Clicks are drawn for every treated subscriber: the caller keeps them
    only where the message had a link."""
    from jingxin.analytics.assign import unit

    def u(action: str) -> np.ndarray:
        return np.nan_to_num(unit(msisdns, f"sim:{seed}:{experiment}:{action}"), nan=1.0)

    treated = np.asarray(treated, dtype=bool)
    mo = u("mo")
    complained = treated & (mo < odds.complain)
    opted_out = treated & ~complained & (mo < odds.complain + odds.opt_out)
    replied = treated & ~complained & ~opted_out & (
        mo < odds.complain + odds.opt_out + odds.reply)  # fmt: skip
    annoyed = complained | opted_out
    order_u = u("order")
    ordered = np.where(treated & ~annoyed, order_u < odds.order_treated,
                       order_u < odds.order_base)  # fmt: skip
    slower = params.delay_minutes / np.maximum(factor, 1e-6)

    def delay(action: str) -> np.ndarray:
        minutes = -np.log1p(-np.minimum(u(action), 1 - 1e-12)) * slower
        return np.minimum(minutes, params.max_delay_minutes)

    return Reactions(clicked=treated & (u("click") < odds.click), replied=replied,
                     opted_out=opted_out, complained=complained, ordered=ordered,
                     click_delay=delay("click_delay"), mo_delay=delay("mo_delay"))  # fmt: skip
