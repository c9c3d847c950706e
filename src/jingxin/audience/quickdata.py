"""A quick numpy warehouse: every table of schema.py at any size, for benchmarks and the
model tests, when the full synthetic operator (``jingxin synth``) is not wanted.

The data is plain but not random noise: each subscriber has a latent *risk* that lowers
usage over the six months, brings complaints and small top-ups, and drives churn and
offer refusal, so that the propensity models have something to learn. Usage is January to
June 2024; features can be built as of 2024-05-01, 06-01 and 07-01.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from jingxin.data.warehouse.schema import TABLES

MONTHS = [dt.date(2024, m, 1) for m in range(1, 7)]
DISTRICTS = ["浦东新区", "徐汇区", "黄浦区", "静安区", "闵行区", "杨浦区", "宝山区", "嘉定区"]
EPOCH = np.datetime64("2024-01-01T00:00:00", "us")


def _t(name: str, cols: dict) -> pa.Table:
    schema = TABLES[name].schema
    return pa.table({f.name: pa.array(cols[f.name], f.type, from_pandas=True)
                     for f in schema}, schema=schema)


def plans() -> pa.Table:
    rows = {k: [] for k in TABLES["plans"].names}
    for payment in ("prepaid", "postpaid"):
        for tier in range(1, 9):
            fee = [18, 38, 58, 88, 128, 158, 199, 299][tier - 1] + (1 if payment == "postpaid"
                                                                     else 0)
            for key, value in (("plan_id", f"{payment[:3].upper()}-{tier}"),
                               ("name", f"{'畅享' if payment == 'prepaid' else '全球通'}{fee}"),
                               ("tier", tier), ("payment", payment), ("monthly_fee", float(fee)),
                               ("data_mb", 1024 * 2 ** (tier - 1)), ("voice_min", 100 * tier),
                               ("sms", 50 * tier), ("overage_data_per_mb", 0.03),
                               ("overage_voice_per_min", 0.15), ("overage_sms", 0.1),
                               ("contract_months", 0 if payment == "prepaid" else 12),
                               ("generation", 5 if tier >= 4 else 4)):
                rows[key].append(value)
    return _t("plans", rows)


def subscribers(n: int, rng: np.random.Generator) -> tuple[pa.Table, dict]:
    ids = np.arange(1, n + 1, dtype=np.int64)
    postpaid = rng.random(n) < 0.45
    tier = np.clip(rng.poisson(2.2, n) + 1, 1, 8)
    plan = np.where(postpaid, "POS-", "PRE-").astype(object) + tier.astype(str).astype(object)
    entry = EPOCH.astype("datetime64[D]") - rng.integers(30, 3650, n).astype("timedelta64[D]")
    risk = rng.normal(0, 1, n)
    cols = {
        "subscriber_id": ids,
        "msisdn": np.char.add("+86138", np.char.zfill(ids.astype(str), 8)),
        "carrier": np.full(n, "china_mobile"), "plan_id": plan,
        "payment": np.where(postpaid, "postpaid", "prepaid"), "status": np.full(n, "active"),
        "gender": rng.choice(["F", "M"], n), "birthday": None,
        "entry_date": entry, "contract_end": None,
        "star_level": rng.integers(0, 8, n).astype(np.int8),
        "region": rng.choice(DISTRICTS, n), "handset_model": None,
        "handset_generation": rng.choice(np.array([3, 4, 5], np.int8), n, p=[.1, .5, .4]),
        "app_user": rng.random(n) < 0.5, "suspended_since": None,
    }
    cols["birthday"] = np.full(n, None)
    cols["contract_end"] = np.full(n, None)
    cols["handset_model"] = np.full(n, None)
    cols["suspended_since"] = np.full(n, None)
    return _t("subscribers", cols), {"tier": tier, "postpaid": postpaid, "risk": risk}


def usage(n: int, hidden: dict, rng: np.random.Generator) -> pa.Table:
    m = len(MONTHS)
    tier, postpaid, risk = hidden["tier"], hidden["postpaid"], hidden["risk"]
    allow_data = 1024.0 * 2.0 ** (tier - 1)
    taste = rng.lognormal(0, 0.6, n)  # data appetite relative to the plan
    fade = 1 - np.clip(risk, 0, None) * 0.08  # risky users use less month after month
    step = np.arange(m)[None, :]
    data = allow_data[:, None] * taste[:, None] * fade[:, None] ** step * rng.lognormal(
        0, 0.15, (n, m))
    voice = (100.0 * tier)[:, None] * rng.lognormal(-0.2, 0.5, (n, 1)) * fade[:, None] ** step
    over = np.clip(data - allow_data[:, None], 0, None) * 0.03
    fee = np.array([18, 38, 58, 88, 128, 158, 199, 299], float)[tier - 1] + postpaid
    bill = fee[:, None] + over
    topups = np.where(postpaid[:, None], 0, rng.integers(1, 4, (n, m)))
    small = np.where(risk > 0.5, 10.0, 50.0)
    ids = np.repeat(np.arange(1, n + 1, dtype=np.int64), m)
    plan = np.repeat(np.where(postpaid, "POS-", "PRE-").astype(object)
                     + tier.astype(str).astype(object), m)
    return _t("usage_monthly", {
        "subscriber_id": ids, "month": np.tile(np.array(MONTHS, "datetime64[D]"), n),
        "plan_id": plan, "data_mb": data.ravel().round(1), "voice_min": voice.ravel().round(1),
        "sms": rng.poisson(20, n * m).astype(np.int32), "bill": bill.ravel().round(2),
        "topup_count": topups.ravel().astype(np.int16),
        "topup_amount": (topups * small[:, None]).ravel().astype(float),
        "roaming_days_domestic": rng.poisson(0.5, n * m).astype(np.int16),
        "roaming_days_international": np.zeros(n * m, np.int16),
    })


def cells(count: int = 200, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed + 1)
    kinds = np.where(np.arange(count) % 10 == 0, "hall",
                     rng.choice(["residential", "business", "mall", "transport"], count))
    return _t("cells", {
        "cell_id": np.char.add("C", np.char.zfill(np.arange(count).astype(str), 4)),
        "lat": 31.0 + rng.random(count) * 0.4, "lon": 121.2 + rng.random(count) * 0.5,
        "district": np.array(DISTRICTS)[np.arange(count) % len(DISTRICTS)], "kind": kinds,
    })


def location_events(n: int, *, days: int, per_day: int, n_cells: int,
                    rng: np.random.Generator, end: dt.date = dt.date(2024, 7, 1)) -> pa.Table:
    """``n × days × per_day`` events in the ``days`` before ``end``: a subscriber is at home
    at night, at work in office hours and elsewhere now and then."""
    home = rng.integers(0, n_cells, n)
    work = rng.integers(0, n_cells, n)
    total = n * days * per_day
    sub = np.repeat(np.arange(n), days * per_day)
    day = np.tile(np.repeat(np.arange(days), per_day), n)
    seconds = rng.integers(0, 86400, total)
    hour = seconds // 3600
    roam = rng.random(total) < 0.15
    cell = np.where((hour >= 21) | (hour < 7), home[sub],
                    np.where((hour >= 9) & (hour < 18), work[sub], home[sub]))
    cell = np.where(roam, rng.integers(0, n_cells, total), cell)
    start = np.datetime64(end - dt.timedelta(days=days), "us")
    ts = start + (day * 86400 + seconds).astype("timedelta64[s]").astype("timedelta64[us]")
    names = np.char.add("C", np.char.zfill(np.arange(n_cells).astype(str), 4))
    return _t("location_events", {"subscriber_id": (sub + 1).astype(np.int64), "ts": ts,
                                  "cell_id": names[cell], "country": np.full(total, "CN")})
