"""The statistics of a campaign report, from its per-arm counts
(:func:`jingxin.analytics.metrics.arm_table`): rates with Wilson intervals, arms compared
(:mod:`jingxin.analytics.stats`), and the money: cost, revenue, incremental revenue, ROI.

Rates are over the subscribers *assigned* to an arm (intention to treat: a treated
subscriber policy then refused still counts), so the hold-out, who were sent nothing,
compare like with like.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from jingxin.analytics.stats import Arm, compare, compare_many, uplift_of, wilson

OUTCOMES = ("delivered", "clicked", "replied", "ordered", "opted_out", "complained")
INTERVALS = ("clicked", "ordered")  # rates shown with their Wilson interval
AB_METRICS = ("clicked", "replied", "ordered", "opted_out", "complained")
ALL_TREATED = "(all treated)"
HOLDOUT_NAME = "holdout"


def subscribers(row: dict[str, Any]) -> int:
    """An arm's subscribers: assigned (numbers messaged before assignments existed count
    as assigned to their message's arm), never fewer than those with an outcome."""
    return max(row["assigned"], row["sent"], *(row[k] for k in OUTCOMES))


def arm_rates(arms: pa.Table) -> pa.Table:
    """``arms`` with each outcome's rate, and the Wilson interval of the click and order
    rates (None for an arm nobody was assigned to)."""
    rows = arms.to_pylist()
    extra: dict[str, list[float | None]] = {}
    for kind in OUTCOMES:
        rates, lows, highs = [], [], []
        for row in rows:
            n = subscribers(row)
            rates.append(row[kind] / n if n else None)
            low, high = wilson(min(row[kind], n), n) if n else (None, None)
            lows.append(low)
            highs.append(high)
        extra[f"{kind}_rate"] = rates
        if kind in INTERVALS:
            extra[f"{kind}_rate_low"], extra[f"{kind}_rate_high"] = lows, highs
    for name, values in extra.items():
        arms = arms.append_column(name, pa.array(values, pa.float64()))
    return arms


COMPARISON_SCHEMA = pa.schema([
    ("metric", pa.string()), ("arm", pa.string()), ("control", pa.string()),
    ("n", pa.int64()), ("successes", pa.int64()), ("rate", pa.float64()),
    ("control_n", pa.int64()), ("control_successes", pa.int64()),
    ("control_rate", pa.float64()), ("diff", pa.float64()), ("diff_low", pa.float64()),
    ("diff_high", pa.float64()), ("lift", pa.float64()), ("p_value", pa.float64()),
    ("p_adjusted", pa.float64()), ("significant", pa.bool_()), ("incremental", pa.float64()),
    ("incremental_low", pa.float64()), ("incremental_high", pa.float64()),
])  # fmt: skip


def comparisons(arms: pa.Table) -> tuple[pa.Table, list[str]]:
    """Every treated arm against the hold-out on orders (with the uplift as incremental
    subscribers who ordered; the treated arms pooled too when there are several), and,
    with two treated arms or more, each against the first on every outcome (Holm-adjusted
    per outcome). Returns the table and the notes on what could not be compared."""
    rows = [r for r in arms.to_pylist() if subscribers(r) > 0]
    held = [r for r in rows if r["holdout"]]
    treated = [r for r in rows if not r["holdout"]]
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    if held and treated:
        control = _arm(held[0], "ordered")
        done = compare_many([control, *(_arm(r, "ordered") for r in treated)],
                            control=control.name)  # fmt: skip
        out += [_row("ordered", c, uplift=True) for c in done.comparisons]
        if len(treated) > 1:
            pooled = {k: sum(r[k] for r in treated) for k in ("assigned", "sent", *OUTCOMES)}
            both = _arm({**pooled, "arm": ALL_TREATED}, "ordered")
            out.append(_row("ordered", compare(both, control), uplift=True))
    elif treated:
        notes.append("no hold-out: the campaign's effect cannot be measured, only arms "
                     "against each other (set a hold-out share to measure it)")  # fmt: skip
    if len(treated) > 1:
        for metric in AB_METRICS:
            done = compare_many([_arm(r, metric) for r in treated], control=treated[0]["arm"])
            out += [_row(metric, c, uplift=False) for c in done.comparisons]
    elif not held and treated:
        notes.append(f"one arm ({treated[0]['arm']}) and no hold-out: nothing to compare")
    return pa.Table.from_pylist(out, schema=COMPARISON_SCHEMA), notes


def _arm(row: dict[str, Any], metric: str) -> Arm:
    n = subscribers(row)
    return Arm(row["arm"], n, min(row[metric], n))


def _row(metric: str, c: Any, *, uplift: bool) -> dict[str, Any]:
    inc = uplift_of(c) if uplift else None
    return {"metric": metric, "arm": c.treated.name, "control": c.control.name,
            "n": c.treated.n, "successes": c.treated.successes, "rate": c.treated.rate,
            "control_n": c.control.n, "control_successes": c.control.successes,
            "control_rate": c.control.rate, "diff": c.diff, "diff_low": c.diff_interval[0],
            "diff_high": c.diff_interval[1], "lift": c.lift, "p_value": c.p_value,
            "p_adjusted": c.p_adjusted, "significant": c.significant,
            "incremental": inc.conversions if inc else None,
            "incremental_low": inc.interval[0] if inc else None,
            "incremental_high": inc.interval[1] if inc else None}  # fmt: skip


# ----------------------------------------------------------------------------- money


def economics(*, treated: dict[str, Any], held: dict[str, Any], n_treated: int, n_held: int,
              tariff: float) -> tuple[pa.Table, list[tuple[str, str]], list[str]]:
    """The summary table (measure, label, value, shown), the headline figures and the
    notes on how cost, revenue and ROI were counted."""
    notes = [(f"cost: messages.cost where the route priced the message, else parts × "
              f"{tariff:g} yuan ([analytics] tariff)")]
    rows: list[tuple[str, str, float | None, str]] = []

    def add(measure: str, label: str, value: float | None, kind: str = "count") -> None:
        rows.append((measure, label, value, _shown(value, kind)))

    add("assigned", "分配 assigned", n_treated + n_held)
    add("treated", "触达组 treated", n_treated)
    add("held_out", "对照组 held out", n_held)
    add("sent", "发送 sent", treated["sent"])
    add("delivered", "送达 delivered", treated["delivered"])
    add("delivery_rate", "送达率 delivery rate", _ratio(treated["delivered"], treated["sent"]),
        "rate")  # fmt: skip
    add("clicked", "点击 clicked", treated["clicked"])
    add("click_rate", "点击率 click rate (of delivered)",
        _ratio(treated["clicked"], treated["delivered"]), "rate")  # fmt: skip
    add("ordered", "订购 ordered (treated)", treated["ordered"])
    add("order_rate", "订购率 order rate (treated)", _ratio(treated["ordered"], n_treated), "rate")
    add("opted_out", "退订 opted out", treated["opted_out"])
    add("complained", "投诉 complained", treated["complained"])
    add("parts", "计费条数 parts", treated["parts"])
    add("cost", "成本 cost (yuan)", float(treated["cost"]), "money")
    add("revenue", "订购金额 revenue attributed (yuan)", float(treated["value"]), "money")
    roi, note = _return(add, treated=treated, held=held, n_treated=n_treated, n_held=n_held)
    notes.append(note)
    if not treated["cost"]:
        notes.append("no cost recorded (nothing sent, or a zero tariff): ROI is not defined")
    add("roi", "投资回报率 ROI", roi, "rate")
    summary = pa.table({
        "measure": [r[0] for r in rows], "label": [r[1] for r in rows],
        "value": pa.array([None if r[2] is None else float(r[2]) for r in rows], pa.float64()),
        "shown": [r[3] for r in rows],
    })  # fmt: skip
    shown = {r[0]: (r[1], r[3]) for r in rows}
    headline = [shown[m] for m in HEADLINE if m in shown]
    return summary, headline, notes


HEADLINE = ("assigned", "sent", "delivery_rate", "order_rate", "uplift", "incremental_orders",
            "cost", "revenue", "roi")  # fmt: skip


def _return(add: Any, *, treated: dict[str, Any], held: dict[str, Any], n_treated: int,
            n_held: int) -> tuple[float | None, str]:
    """ROI and the note saying how it was counted; with a hold-out, the uplift rows too."""
    cost, revenue = float(treated["cost"]), float(treated["value"])
    if not (n_held and n_treated):
        roi = (revenue - cost) / cost if cost else None
        return roi, ("no hold-out: ROI = (attributed revenue − cost) / cost, on every order "
                     "attributed to a message of the campaign; it is not causal (those "
                     "subscribers might have ordered anyway)")  # fmt: skip
    comparison = compare(Arm("treated", n_treated, min(treated["ordered"], n_treated)),
                         Arm(HOLDOUT_NAME, n_held, min(held["ordered"], n_held)))
    lift = uplift_of(comparison)
    expected = float(held["value"]) / n_held * n_treated
    incremental = revenue - expected
    add("holdout_order_rate", "对照组订购率 hold-out order rate", comparison.control.rate, "rate")
    add("uplift", "提升 uplift (order rate difference)", comparison.diff, "rate")
    add("incremental_orders", "增量订购 incremental orders", lift.conversions, "float")
    add("incremental_orders_low", "增量订购下限 low (95%)", lift.interval[0], "float")
    add("incremental_orders_high", "增量订购上限 high (95%)", lift.interval[1], "float")
    add("incremental_revenue", "增量收入 incremental revenue (yuan)", incremental, "money")
    roi = (incremental - cost) / cost if cost else None
    return roi, ("ROI = (incremental revenue − cost) / cost; incremental revenue is the "
                 "treated arms' order value less what the hold-out's value per subscriber "
                 f"predicts for the {n_treated:,} treated ({expected:,.2f} yuan): the uplift "
                 "against the hold-out, so only revenue the campaign caused counts")


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _shown(value: float | None, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "rate":
        return f"{value:.2%}"
    if kind == "money":
        return f"¥{value:,.2f}"
    if kind == "float":
        return f"{value:,.1f}"
    return f"{int(value):,}"
