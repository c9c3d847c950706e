"""Who the subscribers are: the latent population of one chunk and its ``subscribers``
table.

A :class:`Population` holds, per subscriber, both what the warehouse shows (number,
plan, birthday, entry date, handset, status...) and the hidden traits that drive the other
tables and the labels (how much of the plan they use, whether they are drifting away,
price sensitivity, travel, complaint sensitivity). The behaviour model is documented in
docs/synth.md; the numbers here are its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from jingxin.data.synth import districts as geo
from jingxin.data.synth import handsets, numbering
from jingxin.data.synth.calendar import Calendar
from jingxin.data.synth.catalogue import PLAN_ARRAYS
from jingxin.data.synth.columns import categorical, dates
from jingxin.data.warehouse.schema import SUBSCRIBERS

STATUS = ("active", "suspended", "double_stop", "churned")
ACTIVE, SUSPENDED, DOUBLE_STOP, CHURNED = range(4)
DAYS_PER_YEAR = 365.25
# Star-level cut points on the value score (shares about 15/21/20/18/14/8/3/1%).
STAR_CUTS = np.array([-1.40, -0.55, 0.03, 0.55, 1.10, 1.65, 2.30])


@dataclass(frozen=True)
class Population:
    index: np.ndarray  # global 0-based position; subscriber_id = index + 1
    segment: np.ndarray
    gender: np.ndarray  # 0 F, 1 M, -1 unknown
    age: np.ndarray
    birthday: np.ndarray  # day number
    entry_day: np.ndarray
    region: np.ndarray
    handset: np.ndarray  # -1 unknown
    generation: np.ndarray  # 0 unknown
    app_user: np.ndarray
    prepaid: np.ndarray
    plan_start: np.ndarray  # plan code held at the start of the window
    plan_end: np.ndarray  # plan code held now
    change_month: np.ndarray  # first usage month (0..5) on plan_end; 6 = no change
    contract_end: np.ndarray  # day number, -1 none
    star: np.ndarray
    status: np.ndarray
    suspended_since: np.ndarray  # day number, -1 none
    churned_day: np.ndarray  # day number of a churn before as_of, -1 none
    data_fit: np.ndarray  # data need as a share of the starting plan's allowance
    voice_fit: np.ndarray
    disengaging: np.ndarray  # usage fading over the last three months
    price_sensitivity: np.ndarray  # 0..1
    intl_rate: np.ndarray  # international trips per month
    dom_rate: np.ndarray  # domestic roaming days per month
    complaint_sensitive: np.ndarray
    unhappy: np.ndarray  # propensity to complain about bills/network, 0..1
    electronic: np.ndarray  # probability a contact goes to an electronic channel

    def __len__(self) -> int:
        return len(self.index)

    def slice(self, start: int, stop: int) -> Population:
        """Subscribers ``start:stop`` of this population (views, no copies)."""
        return Population(**{k: v[start:stop] for k, v in vars(self).items()})

    @property
    def subscriber_id(self) -> np.ndarray:
        return self.index + 1

    @property
    def prone(self) -> np.ndarray:
        return numbering.PRONE[self.segment]

    def tenure_days(self, calendar: Calendar) -> np.ndarray:
        return calendar.as_of_day - self.entry_day


def _age(rng: np.random.Generator, n: int) -> np.ndarray:
    # A working-age bulge with a long tail of older subscribers, 16..85.
    age = np.where(rng.random(n) < 0.78, rng.normal(38, 11, n), rng.normal(64, 9, n))
    return np.clip(age, 16.0, 85.99)


def _tenure_days(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    n = len(age)
    years = np.minimum(age - 15.5, 20.0) * rng.beta(1.2, 1.9, n)
    recent = rng.random(n) < 0.10  # recent acquisitions: days to a year
    years = np.where(recent, rng.random(n) ** 1.5, years)
    return np.maximum((years * DAYS_PER_YEAR).astype(np.int64), 1)


def _traits(rng: np.random.Generator, age: np.ndarray, value: np.ndarray,
            prepaid: np.ndarray) -> dict[str, np.ndarray]:
    n = len(age)
    young = age < 30
    over = rng.random(n) < np.where(young, 0.18, 0.10)
    under = ~over & (rng.random(n) < np.where(age > 60, 0.40, 0.20))
    data_fit = np.where(over, rng.lognormal(np.log(1.4), 0.2, n),
                        np.where(under, rng.uniform(0.08, 0.42, n), rng.uniform(0.5, 0.95, n)))
    v_over = rng.random(n) < np.where(age > 45, 0.10, 0.05)
    voice_fit = np.where(v_over, rng.lognormal(np.log(1.4), 0.2, n),
                         rng.uniform(0.1, 0.9, n) * np.where(age > 55, 1.0, 0.7))
    price = rng.beta(1.3, 3.0, n) + 0.18 * prepaid - 0.06 * value
    price = np.clip(price, 0.0, 1.0)
    prone_drift = rng.random(n) < 0.045 + 0.08 * price
    intl = np.where(rng.random(n) < 0.04 + 0.03 * (value > 0.8), rng.gamma(2.0, 0.25, n), 0.0)
    dom = np.where(rng.random(n) < 0.35, rng.gamma(1.5, 1.2, n), 0.1)
    return {"data_fit": data_fit, "voice_fit": voice_fit, "disengaging": prone_drift,
                "price_sensitivity": price, "intl_rate": intl, "dom_rate": dom,
                "complaint_sensitive": rng.random(n) < 0.015,
                "unhappy": rng.beta(0.6, 6.0, n),
                "electronic": np.clip(1.05 - age / 75.0 + rng.normal(0, 0.1, n), 0.05, 0.95)}


def _plans(rng: np.random.Generator, value: np.ndarray, prepaid: np.ndarray,
           generation: np.ndarray, traits: dict[str, np.ndarray]):
    n = len(value)
    tier = np.clip(np.rint(3.7 + 1.35 * value - 0.9 * prepaid), 1, 8).astype(np.int64)
    tier = np.where(prepaid, np.minimum(tier, 5), tier)  # prepaid is sold up to tier 5
    want_5g = (generation == 5) & (rng.random(n) < 0.7)
    contract = np.where(rng.random(n) < 0.35, 24, 0)
    start = PLAN_ARRAYS.code(tier=tier, prepaid=prepaid, generation=np.where(want_5g, 5, 4),
                             contract=contract)
    down = (tier > 1) & (rng.random(n) < 0.02 + 0.10 * traits["price_sensitivity"])
    up = ~down & (tier < 8) & (traits["data_fit"] > 1.1) & (rng.random(n) < 0.10)
    new_tier = np.where(prepaid, np.minimum(tier - down + up, 5), tier - down + up)
    end = PLAN_ARRAYS.code(tier=new_tier, prepaid=prepaid, generation=np.where(want_5g, 5, 4),
                           contract=contract)
    change = np.where(down | up, rng.integers(1, 6, n), 6)
    return start, end, change


def draw_population(rng: np.random.Generator, *, start: int, n: int, seed: int,
                    calendar: Calendar) -> Population:
    """The ``n`` subscribers from global position ``start`` on."""
    age = _age(rng, n)
    as_of = calendar.as_of_day
    birthday = as_of - (age * DAYS_PER_YEAR).astype(np.int64)
    entry = as_of - _tenure_days(rng, age)
    middle_age = np.exp(-(((age - 42) / 16) ** 2))
    value = rng.normal(0, 1, n) + 0.8 * middle_age - 0.4
    prepaid = rng.random(n) < 0.22 + 0.18 * (age < 25) + 0.15 * (age > 65) - 0.08 * (value > 0.5)
    handset, generation = handsets.draw(rng, age)
    traits = _traits(rng, age, value, prepaid)
    plan_start, plan_end, change = _plans(rng, value, prepaid, generation, traits)
    contract_end = _contract_end(rng, plan_end, entry, as_of)
    status, since, churned = _status(rng, prepaid, traits, entry, calendar)
    tenure_z = ((as_of - entry) / DAYS_PER_YEAR - 6.0) / 5.0
    score = 0.9 * (np.log(PLAN_ARRAYS.fee[plan_end]) - 4.0) / 0.8 + 0.5 * tenure_z
    star = np.searchsorted(STAR_CUTS, score + rng.normal(0, 0.5, n)).astype(np.int64)
    unknown_handset = rng.random(n) < 0.02
    gender = np.where(rng.random(n) < 0.51, 1, 0)
    gender[rng.random(n) < 0.01] = -1
    return Population(
        index=np.arange(start, start + n, dtype=np.int64),
        segment=numbering.draw_segments(rng, n), gender=gender, age=age, birthday=birthday,
        entry_day=entry, region=rng.choice(len(geo.DISTRICTS), n, p=geo.POPULATION_SHARE),
        handset=np.where(unknown_handset, -1, handset),
        generation=np.where(unknown_handset, 0, generation),
        app_user=rng.random(n) < traits["electronic"] * 0.9 + 0.05,
        prepaid=prepaid, plan_start=plan_start, plan_end=plan_end, change_month=change,
        contract_end=contract_end, star=star, status=status, suspended_since=since,
        churned_day=churned, **traits)


def _contract_end(rng: np.random.Generator, plan: np.ndarray, entry: np.ndarray,
                  as_of: int) -> np.ndarray:
    months = PLAN_ARRAYS.contract[plan]
    began = np.maximum(entry, as_of - rng.integers(0, 730, len(plan)))
    return np.where(months > 0, began + (months * 30.44).astype(np.int64), -1)


def _status(rng: np.random.Generator, prepaid: np.ndarray, traits: dict[str, np.ndarray],
            entry: np.ndarray, calendar: Calendar):
    n = len(prepaid)
    as_of, first = calendar.as_of_day, int(calendar.month_starts[0])
    p_suspend = prepaid * (0.02 + 0.06 * traits["price_sensitivity"] + 0.05 * traits["disengaging"])
    suspended = rng.random(n) < p_suspend
    since = np.where(suspended, as_of - rng.integers(1, 61, n), -1)
    status = np.where(suspended, np.where(as_of - since >= 15, DOUBLE_STOP, SUSPENDED), ACTIVE)
    # A few left before as_of: they keep their rows (history) but get no label.
    churned = ~suspended & (entry < first) & (rng.random(n) < 0.02)
    churned_day = np.where(churned, rng.integers(first + 20, as_of, n), -1)
    status = np.where(churned, CHURNED, status)
    return status, since, churned_day


def subscribers_table(pop: Population, seed: int) -> pa.Table:
    carrier = numbering.SEGMENT_CARRIER[pop.segment]
    unknown_birthday = (pop.index * 2654435761 % 1000) < 5  # 0.5%, stable per subscriber
    arrays = [
        pa.array(pop.subscriber_id),
        numbering.msisdns(pop.segment, pop.index, seed),
        categorical(numbering.CARRIER_NAMES, carrier),
        categorical(PLAN_ARRAYS.ids, pop.plan_end),
        categorical(("postpaid", "prepaid"), pop.prepaid.astype(np.int64)),
        categorical(STATUS, pop.status),
        categorical(("F", "M"), np.maximum(pop.gender, 0), mask=pop.gender < 0),
        dates(pop.birthday, mask=unknown_birthday),
        dates(pop.entry_day),
        dates(np.maximum(pop.contract_end, 0), mask=pop.contract_end < 0),
        pa.array(pop.star.astype(np.int8)),
        categorical(geo.NAMES, pop.region),
        categorical(handsets.NAMES, np.maximum(pop.handset, 0), mask=pop.handset < 0),
        pa.array(pop.generation.astype(np.int8), mask=pop.generation == 0),
        pa.array(pop.app_user),
        dates(np.maximum(pop.suspended_since, 0), mask=pop.suspended_since < 0),
    ]
    return pa.Table.from_arrays(arrays, schema=SUBSCRIBERS.schema)
