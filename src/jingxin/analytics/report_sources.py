"""The hall, retention and plan-fit reports as :class:`~jingxin.analytics.report.Report`s,
so that ``jingxin report hall|retention|planfit`` writes them as HTML, CSV or XLSX the way
a campaign's is written.

These are adapters only: the numbers are computed where they always were
(:func:`jingxin.hall.report.hall_report` and :func:`~jingxin.hall.report.leaderboard`,
:func:`jingxin.retention.reactivation_rate`, the ``plan_fit`` table of
:mod:`jingxin.audience.planfit` and its :func:`~jingxin.audience.planfit.mismatch_report`);
here they become tables and a chart or two. Referral chains are the only place a number
appears: masked, as the hall's own report masks them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jingxin.analytics import charts
from jingxin.analytics.report import Report
from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.data.store.engine import Store
    from jingxin.data.warehouse.connection import Warehouse


def _summary(rows: list[tuple[str, str, float | None, str]]) -> pa.Table:
    """A summary table (measure, label, value, shown) from (measure, label, value, text)."""
    return pa.table({
        "measure": [r[0] for r in rows], "label": [r[1] for r in rows],
        "value": pa.array([None if r[2] is None else float(r[2]) for r in rows], pa.float64()),
        "shown": [r[3] for r in rows],
    })  # fmt: skip


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _rows(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


# ----------------------------------------------------------------------------- hall


def hall_report(store: Store, *, now: datetime, months: int = 3, tenant_id: str | None = None,
                leaderboard_by: str = "staff") -> Report:
    """The hall over ``months`` calendar months up to ``now``: use, zones, orders, referral
    chains, NPS, complaints, and the staff (or branch) leaderboard over the same window."""
    from jingxin.hall import report as hall

    r = hall.hall_report(store, now=now, months=months, tenant_id=tenant_id)
    board = hall.leaderboard(store, since=r.since, by=leaderboard_by,  # type: ignore[arg-type]
                             tenant_id=tenant_id)  # fmt: skip
    who = f"tenant {tenant_id}" if tenant_id else "all tenants"
    report = Report(title="短信营业厅报告 SMS business hall report",
                    subtitle=f"{who} · {r.since:%Y-%m-%d} to {r.until:%Y-%m-%d} UTC "
                             f"({months} months)", generated_at=now)  # fmt: skip
    nps = "–" if r.nps.score is None else f"{r.nps.score:+.1f}"
    report.headline = [("用户 users", f"{r.users:,}"), ("交互 interactions", f"{r.interactions:,}"),
                       ("净推荐值 NPS", nps), ("投诉 complaints", f"{r.complaints:,}")]
    _hall_tables(report, r, board, nps=nps)
    report.add("leaderboard", _rows([asdict(b) for b in board], LEADER_SCHEMA),
               f"激励排行 Leaderboard by {leaderboard_by}")  # fmt: skip
    report.notes += [
        ("users: distinct numbers with an interaction in the window; zone conversion: orders "
         "placed from a zone over the numbers that listed it; NPS: promoters minus "
         "detractors, in points (-100 to 100); a referral chain is the longest path from a "
         "referrer nobody referred"),
        (f"leaderboard: orders placed, referrals converted and points granted under a staff "
         f"code since {r.since:%Y-%m-%d}, ranked in that order"),
    ]  # fmt: skip
    if not r.interactions:
        report.notes.append("nobody used the hall in this window")
    report.charts = _hall_charts(report.tables, answers=r.nps.answers)
    return report


ZONE_SCHEMA = pa.schema([("zone", pa.string()), ("viewers", pa.int64()), ("orders", pa.int64()),
                         ("placed", pa.int64()), ("conversion", pa.float64())])
LEADER_SCHEMA = pa.schema([("rank", pa.int64()), ("key", pa.string()), ("name", pa.string()),
                           ("branch", pa.string()), ("orders", pa.int64()),
                           ("referrals", pa.int64()), ("points", pa.int64()),
                           ("staff", pa.int64())])  # fmt: skip


def _counts(mapping: dict[Any, int], key: str, value: str, key_type: pa.DataType) -> pa.Table:
    return pa.table({key: pa.array(list(mapping), key_type),
                     value: pa.array(list(mapping.values()), pa.int64())})


def _hall_tables(report: Report, r: Any, board: list[Any], *, nps: str) -> None:
    from jingxin.logs import mask

    ref, n = r.referrals, r.nps
    report.add("summary", _summary([
        ("users", "用户 users", r.users, f"{r.users:,}"),
        ("interactions", "交互 interactions", r.interactions, f"{r.interactions:,}"),
        ("queries", "查询 queries", r.kinds.get("query", 0), f"{r.kinds.get('query', 0):,}"),
        ("orders", "办理 orders", r.kinds.get("order", 0), f"{r.kinds.get('order', 0):,}"),
        ("complaints", "投诉 complaints", r.complaints, f"{r.complaints:,}"),
        ("referrals", "推荐 referrals", ref.referrals, f"{ref.referrals:,}"),
        ("referrals_converted", "推荐成功 converted", ref.converted,
         f"{ref.converted:,} ({_share(ref.converted_share)})"),
        ("nps", "净推荐值 NPS", n.score, nps),
        ("nps_answers", "NPS 答复 answers", n.answers, f"{n.answers:,}"),
    ]), "概要 Summary")  # fmt: skip
    report.add("kinds", _counts(r.kinds, "kind", "interactions", pa.string()),
               "交互类型 Interactions by kind")
    report.add("zones", _rows([asdict(z) for z in r.zones], ZONE_SCHEMA),
               "专区转化 Zone conversion")
    report.add("order_states", _counts(r.order_states, "state", "orders", pa.string()),
               "订单状态 Orders by state")
    report.add("nps", _counts({"promoters 推荐者 (9-10)": n.promoters,
                               "passives 中立者 (7-8)": n.passives,
                               "detractors 贬损者 (0-6)": n.detractors},
                              "answer", "answers", pa.string()), "净推荐值 NPS answers")
    report.add("referral_depths", _counts(ref.depths, "depth", "chains", pa.int64()),
               "推荐链深度 Chains by depth")
    report.add("longest_chains", pa.table({
        "depth": pa.array([c.depth for c in ref.longest], pa.int64()),
        "converted": pa.array([c.converted for c in ref.longest], pa.int64()),
        "chain": pa.array([" → ".join(mask(m) for m in c.msisdns) for c in ref.longest],
                          pa.string())}), "最长推荐链 Longest referral chains")  # fmt: skip


def _hall_charts(t: dict[str, pa.Table], *, answers: int) -> list[charts.Chart]:
    out = []
    if t["kinds"].num_rows:
        out.append(charts.pie(t["kinds"], title="交互类型 Interactions by kind", names="kind",
                              values="interactions"))  # fmt: skip
    if t["zones"].num_rows:
        out.append(charts.bars(t["zones"], title="专区转化率 Zone conversion", x="zone",
                               series=[("conversion", "conversion 转化率")], percent=True))
    if answers:
        out.append(charts.bars(t["nps"], title="净推荐值 NPS answers", x="answer",
                               series=[("answers", "answers")]))  # fmt: skip
    if t["leaderboard"].num_rows:
        out.append(charts.bars(
            t["leaderboard"].slice(0, 15), title="激励排行 Leaderboard (top 15)", x="key",
            series=[("orders", "orders 订单"), ("referrals", "referrals 推荐"),
                    ("points", "points 积分")], horizontal=True))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- retention


def retention_report(store: Store, *, since: dt.date | None, now: datetime) -> Report:
    """Double-stop work orders extracted since ``since`` (None: all) and what became of
    them, per branch, with the reactivation rate."""
    from jingxin.retention import reactivation_rate

    rates = reactivation_rate(store, since=since)
    span = f"orders extracted since {since}" if since else "all orders"
    report = Report(title="双停挽留报告 Double-stop retention report",
                    subtitle=f"{span} · 复机率 reactivation rate per branch", generated_at=now)
    fields = ("branch", "orders", "open", "visited", "reactivated", "lost")
    rows = [{f: getattr(r, f) for f in fields} | {"rate": r.rate} for r in rates]
    if rows:
        total = {f: sum(r[f] for r in rows) for f in fields[1:]}
        rows.append({"branch": "all 全部", **total,
                     "rate": total["reactivated"] / total["orders"] if total["orders"] else None})
    schema = pa.schema([("branch", pa.string())] + [(f, pa.int64()) for f in fields[1:]]
                       + [("rate", pa.float64())])  # fmt: skip
    table = _rows(rows, schema)
    report.add("branches", table, "各分公司复机率 Reactivation by branch")
    report.notes.append("rate = reactivated / orders: open orders count in the denominator (an "
                        "order still being worked has not been won); visited counts orders "
                        "visited at least once, whatever their state now")  # fmt: skip
    if not rows:
        report.notes.append(f"no double-stop work orders ({span}): run `jingxin retention "
                            "extract` first")  # fmt: skip
        return report
    all_row = rows[-1]
    report.headline = [("工单 orders", f"{all_row['orders']:,}"),
                       ("复机 reactivated", f"{all_row['reactivated']:,}"),
                       ("复机率 rate", _share(all_row["rate"]))]  # fmt: skip
    branches = table.slice(0, len(rows) - 1)
    report.charts = [
        charts.bars(branches, title="工单去向 What became of the orders", x="branch",
                    series=[("reactivated", "reactivated 复机"), ("lost", "lost 流失"),
                            ("open", "open 处理中")], stacked=True),
        charts.bars(branches, title="复机率 Reactivation rate", x="branch",
                    series=[("rate", "rate 复机率")], percent=True),
    ]  # fmt: skip
    return report


# ----------------------------------------------------------------------------- plan fit

SAVING_BANDS = ((0.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 50.0), (50.0, None))


def planfit_report(warehouse: Warehouse, *, as_of: dt.date | None = None, top: int = 20,
                   now: datetime) -> Report:
    """The ``plan_fit`` build of ``as_of`` (default: the latest): how many subscribers
    are on the wrong plan, what they could save, the moves recommended, and the
    mismatches by plan (:func:`~jingxin.audience.planfit.mismatch_report`)."""
    from jingxin.audience.planfit import PlanFitParams, mismatch_report

    if top < 0:
        raise InputError(f"--top: {top} must be 0 (all) or more")
    if not warehouse.has_table("plan_fit"):
        raise InputError("the warehouse has no plan_fit table: run `jingxin audience planfit` "
                         "first (or `jingxin report planfit --build`)")  # fmt: skip
    t = warehouse.table("plan_fit")
    as_of = as_of or _latest(t)
    t = t.filter(t.as_of == as_of)
    n = int(t.count().execute())
    if not n:
        raise InputError(f"no plan fit as of {as_of}: run `jingxin audience planfit --as-of "
                         f"{as_of}` first (or `jingxin report planfit --build`)")  # fmt: skip
    min_saving = PlanFitParams().min_saving
    report = Report(title="套餐适配报告 Plan-fit report",
                    subtitle=f"plan fit as of {as_of} · {n:,} subscribers with three months "
                             "of usage", generated_at=now)  # fmt: skip
    _planfit_summary(report, t, n=n, min_saving=min_saving)
    fit = t.group_by("mismatch").aggregate(subscribers=t.count()).order_by("mismatch")
    report.add("mismatch", fit.to_pyarrow(), "适配情况 Plan fit (usage vs allowance)")
    by_plan = mismatch_report(warehouse, as_of=as_of)
    report.add("by_plan", (by_plan.limit(top) if top else by_plan).to_pyarrow(),
               "不适配用户按套餐 Mismatched by plan")  # fmt: skip
    moved = t.filter(t.best_plan_id != t.plan_id)
    moves = moved.group_by(["plan_id", "best_plan_id"]).aggregate(
        subscribers=moved.count(), mean_saving=moved.saving.mean().round(2))
    moves = moves.order_by([moves.subscribers.desc(), "plan_id", "best_plan_id"])
    report.add("moves", (moves.limit(top) if top else moves).to_pyarrow(),
               "推荐改套餐 Recommended moves")  # fmt: skip
    report.add("savings", _saving_bands(t, min_saving), "节省分布 Saving per month")
    report.notes += [
        ("current and best plan: the expected monthly cost of the last three months' average "
         "usage (fee plus overage) on each plan of the same payment type within one tier"),
        (f"could save: the best plan costs at least {min_saving:g} yuan a month less; an "
         "up-tier offer costs a little more for more allowance"),
        "mismatch: over / under the allowance three months running (fit otherwise)",
    ]  # fmt: skip
    report.charts = _planfit_charts(report.tables)
    return report


def _planfit_summary(report: Report, t: Any, *, n: int, min_saving: float) -> None:
    """The summary and headline: one aggregate over the build."""
    saver = t.saving >= min_saving
    totals = t.aggregate(
        recommended=t.message.notnull().cast("int64").sum(), savers=saver.cast("int64").sum(),
        saved=t.saving.sum(where=saver), mean_saving=t.saving.mean(where=saver),
        up=(t.message.notnull() & ~saver).cast("int64").sum()).to_pyarrow().to_pylist()[0]
    saved, mean = float(totals["saved"] or 0.0), totals["mean_saving"]
    recommended, savers, up = (int(totals[k] or 0) for k in ("recommended", "savers", "up"))
    report.add("summary", _summary([
        ("subscribers", "用户 subscribers", n, f"{n:,}"),
        ("recommended", "有推荐 with a recommendation", recommended, f"{recommended:,}"),
        ("could_save", f"可省钱 could save ≥ {min_saving:g} 元/月", savers, f"{savers:,}"),
        ("mean_saving", "平均每月节省 mean saving (yuan/month)", mean,
         "–" if mean is None else f"¥{mean:,.2f}"),
        ("total_saving", "每月节省合计 total saving (yuan/month)", saved, f"¥{saved:,.2f}"),
        ("up_tier", "升档推荐 up-tier offers", up, f"{up:,}"),
    ]), "概要 Summary")  # fmt: skip
    report.headline = [("用户 subscribers", f"{n:,}"), ("有推荐 recommended", f"{recommended:,}"),
                       ("可省钱 could save", f"{savers:,}"),
                       ("每月节省 saving/month", f"¥{saved:,.0f}")]  # fmt: skip


def _planfit_charts(tables: dict[str, pa.Table]) -> list[charts.Chart]:
    out = [
        charts.pie(tables["mismatch"], title="适配情况 Plan fit", names="mismatch",
                   values="subscribers"),
        charts.bars(tables["savings"], title="节省分布 Subscribers by saving per month",
                    x="band", series=[("subscribers", "subscribers 用户")]),
    ]  # fmt: skip
    if tables["moves"].num_rows:
        shown = tables["moves"].slice(0, 15)
        labels = [f"{a} → {b}" for a, b in zip(shown["plan_id"].to_pylist(),
                                                shown["best_plan_id"].to_pylist(), strict=True)]
        out.append(charts.bars(shown.append_column("move", pa.array(labels, pa.string())),
                               title="推荐改套餐 Recommended moves (top 15)", x="move",
                               series=[("subscribers", "subscribers 用户")], horizontal=True))
    return out


def _latest(t: Any) -> dt.date:
    latest = t.as_of.max().execute()
    if latest is None:
        raise InputError("the plan_fit table is empty: run `jingxin audience planfit` first")
    return latest.date() if isinstance(latest, datetime) else latest


def _saving_bands(t: Any, min_saving: float) -> pa.Table:
    """Subscribers who could save, by band of yuan a month (one aggregate)."""
    def within(low: float, high: float | None) -> Any:
        above = t.saving >= max(low, min_saving)
        return (above & (t.saving < high) if high else above).cast("int64").sum()

    counts = t.aggregate(**{f"b{i}": within(low, high)
                            for i, (low, high) in enumerate(SAVING_BANDS)}).to_pyarrow()
    counts = counts.to_pylist()[0]
    bands = [f"{max(low, min_saving):g}-{high:g}" if high else f"{low:g}+"
             for low, high in SAVING_BANDS]  # fmt: skip
    return pa.table({"band": bands, "subscribers": pa.array(
        [int(counts[f"b{i}"] or 0) for i in range(len(SAVING_BANDS))], pa.int64())})
