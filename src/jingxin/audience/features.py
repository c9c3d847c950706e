"""The ``features`` table: derived features per subscriber as of a date, computed in the
warehouse and stored with their ``as_of``.

:func:`feature_expr` builds one Ibis expression (so DuckDB or Spark does the work);
:func:`build_features` stores it, replacing any earlier build for the same date. The
columns are declared in :data:`FEATURES` so that segment specs can be checked against them
before a query runs. Definitions live with the code that computes them: usage.py,
sensitivity.py, contact.py, residence.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jingxin.audience.contact import ContactParams
from jingxin.audience.residence import ResidenceParams
from jingxin.audience.sensitivity import SensitivityParams
from jingxin.audience.usage import UsageParams
from jingxin.data.warehouse.schema import (
    BOOL,
    DATE,
    F64,
    I32,
    I64,
    STR,
    Column,
    TableSpec,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from jingxin.data.warehouse.connection import Warehouse

C = Column
FEATURES = TableSpec(
    name="features",
    doc="Derived features per subscriber as of a date (jingxin audience features).",
    key=("subscriber_id", "as_of"),
    columns=(
        C("subscriber_id", I64),
        C("as_of", DATE),
        C("arpu", F64, doc="mean monthly bill, last 3 months (yuan)"),
        C("arpu_prev", F64, doc="mean monthly bill, the 3 months before those"),
        C("data_mb_3m", F64), C("voice_min_3m", F64), C("sms_3m", F64),
        C("topup_count_3m", I64), C("topup_amount_3m", F64),
        C("product_preference", STR, choices=("data_heavy", "voice_heavy", "balanced")),
        C("usage_trend", STR, choices=("surge", "drop", "stable")),
        C("value_tier", STR, choices=("low", "mid", "high")),
        C("plan_fit", STR, choices=("over", "under", "fit", "unknown")),
        C("handset_upgrade", BOOL),
        C("tenure_months", I32),
        C("tenure_group", STR, choices=("under_6m", "6_12m", "over_12m")),
        C("price_sensitivity", F64, doc="0 (insensitive) .. 1 (very sensitive)"),
        C("hall_contacts", I64), C("electronic_contacts", I64),
        C("channel_preference", STR, choices=("physical", "electronic")),
        C("complaint_count", I64), C("complaint_sensitive", BOOL),
        C("home_cell", STR, nullable=True), C("home_district", STR, nullable=True),
        C("home_lat", F64, nullable=True), C("home_lon", F64, nullable=True),
        C("work_cell", STR, nullable=True), C("work_district", STR, nullable=True),
    ),
)


@dataclass(frozen=True)
class FeatureParams:
    """Every threshold of the feature build, grouped by the module that uses it."""

    usage: UsageParams = field(default_factory=UsageParams)
    sensitivity: SensitivityParams = field(default_factory=SensitivityParams)
    contact: ContactParams = field(default_factory=ContactParams)
    residence: ResidenceParams = field(default_factory=ResidenceParams)


def usage_part(warehouse: Warehouse, as_of: dt.date, params: FeatureParams) -> ir.Table:
    """Per subscriber: every feature except residence (that one is heavy; see residence)."""
    import ibis

    from jingxin.audience import contact, sensitivity, usage
    from jingxin.audience.source import read
    from jingxin.audience.window import AsOf

    up, sp, cp = params.usage, params.sensitivity, params.contact
    w = AsOf(as_of)
    subs = read(warehouse, "subscribers").filter(ibis._.entry_date < as_of)
    um = read(warehouse, "usage_monthly")
    plans = read(warehouse, "plans")
    complaints = read(warehouse, "complaints")
    summary = usage.usage_summary(usage=um, plans=plans, window=w, params=up)
    parts = [
        usage.preference(summary, up),
        sensitivity.offer_response(offers=read(warehouse, "offers"), window=w),
        sensitivity.bill_complaints(complaints=complaints, window=w),
        contact.channel_counts(contacts=read(warehouse, "channel_contacts"), window=w,
                               params=cp),
        contact.complaint_counts(complaints=complaints, window=w, params=cp),
    ]
    t = subs.select("subscriber_id", "entry_date", "app_user", "handset_generation")
    for part in parts:
        t = t.left_join(part, "subscriber_id").drop("subscriber_id_right")
    return _finish(t, w, up, sp, cp)


def _finish(t: ir.Table, w, up, sp, cp) -> ir.Table:
    import ibis

    from jingxin.audience import contact, sensitivity, usage

    zero_f = ("arpu", "arpu_prev", "data_mb_3m", "voice_min_3m", "sms_3m", "topup_amount_3m")
    zero_i = ("topup_count_3m", "hall_contacts", "electronic_contacts", "complaint_count",
              "marketing_complaints")
    t = t.mutate(**{c: t[c].fill_null(0.0) for c in zero_f},
                 **{c: t[c].fill_null(0).cast("int64") for c in zero_i})
    t = t.mutate(
        avg_topup=ibis.cases((t.topup_count_3m > 0, t.topup_amount_3m / t.topup_count_3m),
                             else_=ibis.null("float64")),
        tenure_months=usage.tenure_months(t.entry_date, w),
    )
    return t.select(
        "subscriber_id",
        as_of=ibis.literal(w.day, "date"),
        arpu=t.arpu.round(2), arpu_prev=t.arpu_prev.round(2),
        data_mb_3m=t.data_mb_3m.round(2), voice_min_3m=t.voice_min_3m.round(2),
        sms_3m=t.sms_3m.round(2), topup_count_3m=t.topup_count_3m,
        topup_amount_3m=t.topup_amount_3m.round(2),
        product_preference=t.product_preference.fill_null("balanced"),
        usage_trend=t.usage_trend.fill_null("stable"),
        value_tier=usage.value_tier(t.arpu, up),
        plan_fit=t.plan_fit.fill_null("unknown"),
        handset_upgrade=usage.handset_upgrade(t.data_mb_3m, t.handset_generation, up),
        tenure_months=t.tenure_months,
        tenure_group=usage.tenure_group(t.tenure_months),
        price_sensitivity=sensitivity.score(t, sp),
        hall_contacts=t.hall_contacts, electronic_contacts=t.electronic_contacts,
        channel_preference=contact.channel_preference(
            t.hall_contacts, t.electronic_contacts, t.app_user),
        complaint_count=t.complaint_count,
        complaint_sensitive=(t.marketing_complaints > 0)
        | (t.complaint_count >= cp.many_complaints),
    )


def feature_expr(warehouse: Warehouse, *, as_of: dt.date,
                 params: FeatureParams | None = None) -> ir.Table:
    """The whole feature row per subscriber who had entered the network before as_of."""
    from jingxin.audience.residence import resident_cells
    from jingxin.audience.source import read
    from jingxin.audience.window import AsOf

    params = params or FeatureParams()
    t = usage_part(warehouse, as_of, params)
    res = resident_cells(events=read(warehouse, "location_events"),
                         cells=read(warehouse, "cells", optional=True), window=AsOf(as_of),
                         params=params.residence)
    t = t.left_join(res, "subscriber_id").drop("subscriber_id_right")
    return t.select(*FEATURES.names)


def build_features(warehouse: Warehouse, *, as_of: dt.date,
                   params: FeatureParams | None = None) -> int:
    """Compute and store the features as of ``as_of``; return the number of rows."""
    from jingxin.audience.store import replace_partition

    expr = feature_expr(warehouse, as_of=as_of, params=params)
    return replace_partition(warehouse, table="features", expr=expr, key="as_of", value=as_of)
