"""A tiny hand-made warehouse (following schema.py) whose answers are known by hand.

As of 2024-07-01 (last month June; last three months April-June):
1 light user on P3 (under-uses)   → plan fit 'under', planfit recommends P2 (saves 20 yuan)
2 heavy data on Q2 since March    → 'over' and a surge in June; electronic (app contacts)
3 heavy data on a 4G handset      → handset upgrade candidate; fits Q3
4 voice user, downgraded P2 → P1, small top-ups, billing + marketing complaints
  → price-sensitive and complaint-sensitive
5 balanced user on Q4, hall visitor → physical channel
6 entered the network after as_of → no features
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from jingxin.data.warehouse.schema import TABLES

AS_OF = dt.date(2024, 7, 1)
D, T = dt.date, dt.datetime


def _table(name: str, rows: list[tuple]) -> pa.Table:
    schema = TABLES[name].schema
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    return pa.table({f.name: pa.array(list(c), f.type) for f, c in zip(schema, cols,
                                                                        strict=True)},
                    schema=schema)


PLANS = [
    # id, name, tier, payment, fee, data, voice, sms, od, ov, os, contract, gen
    ("P1", "畅享18", 1, "prepaid", 18.0, 1024, 100, 50, 0.03, 0.15, 0.1, 0, 4),
    ("P2", "畅享38", 2, "prepaid", 38.0, 5120, 300, 100, 0.03, 0.15, 0.1, 0, 4),
    ("P3", "畅享58", 3, "prepaid", 58.0, 10240, 500, 100, 0.03, 0.15, 0.1, 0, 4),
    ("Q2", "全球通39", 2, "postpaid", 39.0, 6144, 300, 100, 0.03, 0.15, 0.1, 12, 5),
    ("Q3", "全球通59", 3, "postpaid", 59.0, 20480, 500, 100, 0.03, 0.15, 0.1, 12, 5),
    ("Q4", "全球通88", 4, "postpaid", 88.0, 40960, 1000, 200, 0.03, 0.15, 0.1, 12, 5),
    ("Q6", "全球通199", 6, "postpaid", 199.0, 102400, 3000, 500, 0.03, 0.15, 0.1, 24, 5),
]

SUBSCRIBERS = [
    # id, msisdn, carrier, plan, payment, status, gender, birthday, entry, contract_end,
    # star, region, handset, generation, app_user, suspended_since
    (1, "+8613800000001", "china_mobile", "P3", "prepaid", "active", "F", D(1980, 5, 1),
     D(2020, 1, 15), None, 3, "浦东新区", "Mate 30", 4, False, None),
    (2, "+8613800000002", "china_mobile", "Q2", "postpaid", "active", "M", D(1995, 7, 2),
     D(2024, 3, 10), D(2025, 3, 10), 2, "徐汇区", "iPhone 15", 5, True, None),
    (3, "+8613800000003", "china_mobile", "Q3", "postpaid", "active", "M", None,
     D(2023, 10, 1), D(2024, 10, 1), 4, "浦东新区", "Mi 9", 4, True, None),
    (4, "+8613800000004", "china_mobile", "P1", "prepaid", "active", "F", D(1960, 1, 9),
     D(2019, 5, 5), None, 1, "闵行区", "Nokia", 3, False, None),
    (5, "+8613800000005", "china_mobile", "Q4", "postpaid", "active", None, None,
     D(2018, 1, 1), D(2025, 1, 1), 6, "浦东新区", None, 5, False, None),
    (6, "+8613800000006", "china_mobile", "Q3", "postpaid", "active", "M", None,
     D(2024, 8, 1), None, 0, "黄浦区", "P60", 5, True, None),
]

MONTHS = [D(2024, m, 1) for m in range(1, 7)]


def _usage() -> list[tuple]:
    rows = []
    for m in MONTHS:
        # id, month, plan, data, voice, sms, bill, topup_count, topup_amount, dom, intl
        rows.append((1, m, "P3", 500.0, 50.0, 5, 58.0, 1, 60.0, 0, 0))
        if m.month >= 4:
            data = 12000.0 if m.month == 6 else 8000.0
            rows.append((2, m, "Q2", data, 200.0, 10, 39.0 + (data - 6144) * 0.03, 0, 0.0,
                         0, 0))
        rows.append((3, m, "Q3", 15000.0, 300.0, 10, 59.0, 0, 0.0, 1, 0))
        plan4 = "P2" if m.month <= 2 else "P1"
        rows.append((4, m, plan4, 200.0, 250.0, 20, 50.0 if m.month <= 3 else 30.0, 3, 30.0,
                     0, 0))
        rows.append((5, m, "Q4", 6000.0, 300.0, 30, 88.0, 0, 0.0, 2, 1))
    return rows


CELLS = [
    ("C1", 31.22, 121.54, "浦东新区", "residential"),
    ("C2", 31.23, 121.48, "黄浦区", "business"),
    ("C3", 31.19, 121.43, "徐汇区", "residential"),
    ("C4", 31.11, 121.38, "闵行区", "residential"),
    ("H1", 31.225, 121.545, "浦东新区", "hall"),
    ("H2", 31.19, 121.44, "徐汇区", "hall"),
]

HOMES = {1: "C1", 2: "C3", 3: "C1", 4: "C4", 5: "C1"}


def _events() -> list[tuple]:
    rows = []
    for day in range(24, 31):  # Monday 24 June .. Sunday 30 June 2024
        for sid, home in HOMES.items():
            for hour, cell in ((2, home), (10, "C2"), (14, "C2"), (19, "C3"), (22, home)):
                rows.append((sid, T(2024, 6, day, hour), cell, "CN"))
    rows.append((2, T(2024, 6, 20, 23), "C9", "JP"))  # abroad: ignored
    return rows


COMPLAINTS = [
    (4, T(2024, 5, 10, 10), "billing", "hotline"),
    (4, T(2024, 6, 10, 10), "marketing_sms", "hotline"),
]

CONTACTS = (
    [(5, T(2024, 6, d, 11), "hall", "payment") for d in (3, 10, 17)]
    + [(2, T(2024, 6, d, 20), "app", "query") for d in range(1, 6)]
)

OFFERS = [
    ("o1", 4, "DP", T(2024, 5, 1, 10), "sms", True, T(2024, 5, 1, 12)),
    ("o2", 4, "DP", T(2024, 6, 1, 10), "sms", True, T(2024, 6, 1, 12)),
    ("o3", 1, "DP", T(2024, 6, 1, 10), "sms", False, None),
    ("o4", 2, "DP", T(2024, 6, 1, 10), "sms", True, T(2024, 6, 2, 9)),
]

PRODUCTS = [
    ("BB", "宽带", "broadband", 50.0), ("TV", "IPTV", "iptv", 20.0),
    ("DP", "流量包", "data_pack", 10.0), ("RB", "彩铃", "ringback", 5.0),
]

HOLDINGS = [
    (1, "BB", D(2023, 1, 1), None), (1, "TV", D(2023, 1, 1), None),
    (2, "BB", D(2024, 4, 1), None), (2, "TV", D(2024, 4, 1), None),
    (3, "BB", D(2023, 11, 1), None), (3, "TV", D(2023, 11, 1), None),
    (3, "DP", D(2024, 1, 1), None), (4, "RB", D(2020, 1, 1), None),
    (5, "BB", D(2019, 1, 1), None), (5, "TV", D(2019, 1, 1), D(2024, 1, 1)),
]

CHURN = [(1, D(2024, 6, 1), False, None), (4, D(2024, 6, 1), True, D(2024, 8, 1))]


def tables() -> dict[str, pa.Table]:
    return {
        "plans": _table("plans", PLANS),
        "subscribers": _table("subscribers", SUBSCRIBERS),
        "usage_monthly": _table("usage_monthly", _usage()),
        "cells": _table("cells", CELLS),
        "location_events": _table("location_events", _events()),
        "complaints": _table("complaints", COMPLAINTS),
        "channel_contacts": _table("channel_contacts", CONTACTS),
        "offers": _table("offers", OFFERS),
        "products": _table("products", PRODUCTS),
        "holdings": _table("holdings", HOLDINGS),
        "churn_labels": _table("churn_labels", CHURN),
    }


def load(warehouse, skip: tuple[str, ...] = ()) -> None:
    """Create every tiny table in ``warehouse`` (except ``skip``)."""
    for name, table in tables().items():
        if name not in skip:
            warehouse.con.create_table(name, table, overwrite=True)
