"""Price sensitivity: a score in [0, 1] from five signals, each scaled to [0, 1].

=================  ======  ====================================================
signal             weight  value
=================  ======  ====================================================
small top-ups      0.25    1 if the average top-up (last 3 months) < 30 yuan,
                           0.5 if < 50 yuan, else 0 (no top-ups: 0)
downgrades         0.20    1 if the plan tier fell at least once in 6 months
discount response  0.20    share of offers (6 months) the subscriber took
ARPU decline       0.20    (ARPU of months 4-6 - ARPU of months 1-3) / months 4-6,
                           clipped to [0, 1]
bill complaints    0.15    1 if any billing complaint in 6 months
=================  ======  ====================================================

Weights are parameters; they sum to 1 so that the score stays in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from jingxin.audience.window import AsOf


@dataclass(frozen=True)
class SensitivityParams:
    small_topup: float = 30.0
    medium_topup: float = 50.0
    w_topup: float = 0.25
    w_downgrade: float = 0.20
    w_discount: float = 0.20
    w_decline: float = 0.20
    w_complaint: float = 0.15


def downgrade(tiers: list[ir.Value]) -> ir.Value:
    """1.0 when the plan tier fell at least once from one month with a known tier to the
    next such month, else 0.0. ``tiers``: the tier held each month, newest first (null
    when unknown); :func:`jingxin.audience.usage.usage_summary` pivots them out of the
    same scan of usage that gives the other usage features."""
    fell = ibis.literal(False)
    for k in range(len(tiers) - 1):
        before = ibis.coalesce(*tiers[k + 1:]) if len(tiers) > k + 2 else tiers[k + 1]
        fell = fell | (tiers[k] < before).fill_null(False)
    return fell.cast("float64")


def offer_response(*, offers: ir.Table, window: AsOf) -> ir.Table:
    o = offers.filter((offers.sent_at >= window.days_back(183)) & (offers.sent_at < window.end))
    return o.group_by("subscriber_id").aggregate(
        discount_response=o.responded.cast("float64").mean())


def bill_complaints(*, complaints: ir.Table, window: AsOf) -> ir.Table:
    c = complaints.filter((complaints.ts >= window.days_back(183))
                          & (complaints.ts < window.end) & (complaints.category == "billing"))
    return c.select("subscriber_id").distinct().mutate(bill_complaint=ibis.literal(1.0))


def score(t: ir.Table, params: SensitivityParams) -> ir.Value:
    """The weighted score over columns avg_topup, downgrade, discount_response, arpu,
    arpu_prev and bill_complaint (nulls mean "no signal", i.e. 0)."""
    topup = ibis.cases(
        (t.avg_topup.isnull(), 0.0),
        (t.avg_topup < params.small_topup, 1.0),
        (t.avg_topup < params.medium_topup, 0.5),
        else_=0.0,
    )
    decline = ibis.cases(
        (t.arpu_prev > 0, ibis.greatest(ibis.least((t.arpu_prev - t.arpu) / t.arpu_prev, 1.0),
                                        0.0)),
        else_=0.0,
    )
    total = (params.w_topup * topup
             + params.w_downgrade * t.downgrade.fill_null(0.0)
             + params.w_discount * t.discount_response.fill_null(0.0)
             + params.w_decline * decline
             + params.w_complaint * t.bill_complaint.fill_null(0.0))
    return total.round(4)
