"""The rest of the quick numpy warehouse: complaints, contacts, offers, labels, products
and holdings (see :mod:`jingxin.audience.quickdata`)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from jingxin.audience.quickdata import (
    _t,
    cells,
    location_events,
    plans,
    subscribers,
    usage,
)

LABEL_DATES = [dt.date(2024, 5, 1), dt.date(2024, 6, 1)]
PRODUCTS = [("BB", "宽带", "broadband", 50.0), ("TV", "IPTV", "iptv", 20.0),
            ("DP", "流量包", "data_pack", 10.0), ("VP", "语音包", "voice_pack", 8.0),
            ("RB", "彩铃", "ringback", 5.0), ("FM", "亲情网", "family", 10.0),
            ("VD", "视频会员", "video", 15.0), ("MU", "音乐会员", "music", 10.0)]


def _stamps(rng, count: int, start: str, days: int) -> np.ndarray:
    base = np.datetime64(start, "us")
    return base + rng.integers(0, days * 86400, count).astype("timedelta64[s]").astype(
        "timedelta64[us]")


def complaints(n: int, risk: np.ndarray, rng) -> pa.Table:
    p = 1 / (1 + np.exp(-(risk * 1.5 - 3)))
    who = np.flatnonzero(rng.random(n) < p)
    cats = rng.choice(["billing", "network", "marketing_sms", "service"], len(who),
                      p=[.4, .3, .1, .2])
    return _t("complaints", {"subscriber_id": (who + 1).astype(np.int64),
                             "ts": _stamps(rng, len(who), "2024-01-01", 180),
                             "category": cats, "channel": np.full(len(who), "hotline")})


def contacts(n: int, rng) -> pa.Table:
    count = rng.poisson(1.5, n)
    who = np.repeat(np.arange(n), count)
    return _t("channel_contacts", {
        "subscriber_id": (who + 1).astype(np.int64),
        "ts": _stamps(rng, len(who), "2024-01-01", 180),
        "channel": rng.choice(["hall", "app", "web", "hotline", "sms_hall"], len(who)),
        "purpose": rng.choice(["query", "order", "topup", "payment"], len(who)),
    })


def offers(n: int, risk: np.ndarray, rng) -> pa.Table:
    who = np.flatnonzero(rng.random(n) < 0.4)
    sent = _stamps(rng, len(who), "2024-04-01", 90)
    p = 1 / (1 + np.exp(-(risk[who] * 1.2 - 0.5)))  # the price-sensitive take offers
    took = rng.random(len(who)) < p
    return _t("offers", {
        "offer_id": np.char.add("o", np.arange(len(who)).astype(str)),
        "subscriber_id": (who + 1).astype(np.int64),
        "product_id": rng.choice([p[0] for p in PRODUCTS], len(who)), "sent_at": sent,
        "channel": np.full(len(who), "sms"), "responded": took,
        "responded_at": np.where(took, sent + np.timedelta64(3600, "s"), np.datetime64("NaT")),
    })


def churn_labels(n: int, risk: np.ndarray, rng) -> pa.Table:
    ids, dates, churned = [], [], []
    for day in LABEL_DATES:
        p = 1 / (1 + np.exp(-(risk * 1.8 - 2.5)))
        ids.append(np.arange(1, n + 1, dtype=np.int64))
        dates.append(np.full(n, np.datetime64(day, "D")))
        churned.append(rng.random(n) < p)
    c = np.concatenate(churned)
    return _t("churn_labels", {"subscriber_id": np.concatenate(ids),
                               "as_of": np.concatenate(dates), "churned_3m": c,
                               "churn_date": np.full(len(c), None)})


def holdings(n: int, rng) -> pa.Table:
    bb = rng.random(n) < 0.3
    tv = np.where(bb, rng.random(n) < 0.6, rng.random(n) < 0.05)
    dp = rng.random(n) < 0.2
    vd = np.where(dp, rng.random(n) < 0.5, rng.random(n) < 0.1)
    subs, prods = [], []
    for pid, has in (("BB", bb), ("TV", tv), ("DP", dp), ("VD", vd),
                     ("RB", rng.random(n) < 0.1)):
        idx = np.flatnonzero(has)
        subs.append(idx + 1)
        prods.append(np.full(len(idx), pid))
    s = np.concatenate(subs).astype(np.int64)
    return _t("holdings", {"subscriber_id": s, "product_id": np.concatenate(prods),
                           "start_date": np.full(len(s), np.datetime64("2023-01-01", "D")),
                           "end_date": np.full(len(s), None)})


def warehouse_tables(n: int, *, seed: int = 0, events_days: int = 7, events_per_day: int = 20,
                     n_cells: int = 200) -> dict[str, pa.Table]:
    """Every warehouse table for ``n`` subscribers (no location events when days = 0)."""
    rng = np.random.default_rng(seed)
    subs, hidden = subscribers(n, rng)
    risk = hidden["risk"]
    out = {"plans": plans(), "subscribers": subs, "usage_monthly": usage(n, hidden, rng),
           "cells": cells(n_cells, seed), "complaints": complaints(n, risk, rng),
           "channel_contacts": contacts(n, rng), "offers": offers(n, risk, rng),
           "churn_labels": churn_labels(n, risk, rng), "holdings": holdings(n, rng),
           "products": _t("products", {k: [p[i] for p in PRODUCTS] for i, k in enumerate(
               ("product_id", "name", "category", "monthly_fee"))})}
    if events_days:
        out["location_events"] = location_events(n, days=events_days, per_day=events_per_day,
                                                 n_cells=n_cells, rng=rng)
    return out


def load(warehouse, tables: dict[str, pa.Table]) -> None:
    for name, table in tables.items():
        warehouse.con.create_table(name, table, overwrite=True)
