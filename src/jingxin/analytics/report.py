"""Reports: a campaign's results (and the hall's, retention's, plan fit's) as tables and
charts, written as one offline HTML page, a CSV or an XLSX workbook.

A :class:`Report` is what every report is: a title, notes that say what the numbers
mean (or why there are none), named Arrow tables, and plotly charts drawn from those
tables. :func:`write_report` writes one (:mod:`jingxin.analytics.render`); the hall,
retention and plan-fit reports are turned into one in :mod:`.report_sources`.

:func:`campaign_report` reads the event log (after :func:`~jingxin.analytics.events.collect`
has brought it up to date) and the per-arm metrics (:mod:`jingxin.analytics.metrics`), and
gives:

* the funnel of the treated arms: assigned → sent → delivered → clicked → replied →
  ordered, with opted out and complained beside it (distinct subscribers);
* the arms, each rate with its Wilson interval; every arm against the hold-out (or, without
  one, against the first arm) on each outcome: the difference with its Newcombe interval,
  p-values Holm-adjusted per outcome, and the uplift as incremental subscribers;
* cost (``messages.cost``, else parts × ``[analytics] tariff``), revenue (order value
  attributed to the campaign) and ROI on the revenue the campaign *added* over the
  hold-out (without a hold-out, on attributed revenue, which is not causal - a note says
  so);
* events per hour by kind, in the operator's zone;
* the outcomes by segment, district, tenure band and plan, joined with the warehouse's
  ``subscribers`` in DuckDB (:mod:`.report_breakdown`).

The campaign's rows are read once (:func:`~jingxin.analytics.metrics.experiment_rows`:
assignments and events as Arrow columns, messages grouped by state and arm in SQL) and
every table is counted from them, in Arrow and then DuckDB, never row by row in Python: a
report over a million recipients takes seconds (BENCHMARKS.md, "Reports"). No report
lists a subscriber's number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from jingxin.analytics.charts import Chart
from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.analytics.experiment_rows import ExperimentRows
    from jingxin.config import Settings
    from jingxin.data.store.engine import Store

HOLDOUT = "holdout"
FUNNEL = (("assigned", "分配"), ("sent", "发送"), ("delivered", "送达"), ("clicked", "点击"),
          ("replied", "回复"), ("ordered", "订购"))  # fmt: skip
SIDE_OUTCOMES = (("opted_out", "退订"), ("complained", "投诉"))
# The tables in the order a reader wants them: the summary first, the detail last.
ORDER = ("summary", "funnel", "arms", "comparisons", "by_segment", "by_region", "by_tenure",
         "by_plan", "timeline", "messages")
OPERATORS_BREAKDOWNS = ("the breakdowns by segment, district, tenure and plan are left out: "
                        "they read the operator's subscriber warehouse")
HEADINGS = {
    "summary": "概要 Summary", "funnel": "转化漏斗 Funnel (treated arms)",
    "arms": "实验分组 Arms", "comparisons": "分组对比 Arms compared",
    "messages": "短信状态 Messages by state", "timeline": "每小时事件 Events per hour",
    "by_segment": "按客户细分 By segment", "by_region": "按区县 By district",
    "by_tenure": "按在网时长 By tenure", "by_plan": "按套餐 By plan",
}  # fmt: skip


@dataclass
class Report:
    """A report: notes, named tables and charts. ``headline`` holds the key figures as
    (label, formatted value) for the top of the page and the command's summary;
    ``headings`` the bilingual heading of each table."""

    title: str
    subtitle: str = ""
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pa.Table] = field(default_factory=dict)
    charts: list[Chart] = field(default_factory=list)
    headline: list[tuple[str, str]] = field(default_factory=list)
    headings: dict[str, str] = field(default_factory=dict)
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def add(self, name: str, table: pa.Table, heading: str | None = None) -> None:
        self.tables[name] = table
        self.headings[name] = heading or HEADINGS.get(name, name)


def write_report(report: Report, out: Path) -> Path:
    """Write ``report`` as ``.html`` (self-contained, offline), ``.csv`` (one long file,
    a ``table`` column) or ``.xlsx`` (a sheet per table), by the suffix of ``out``. An
    unknown suffix is an InputError naming it; the file is replaced only when complete."""
    from jingxin.analytics.render import write

    return write(report, out)


# ----------------------------------------------------------------------------- campaign


def campaign_report(store: Store, warehouse_con: Any, campaign_id: int, *,
                    settings: Settings, now: datetime | None = None,
                    breakdowns_shown: bool = True) -> Report:  # fmt: skip
    """The report of campaign ``campaign_id`` (see the module's docstring).

    ``warehouse_con`` is the warehouse (a :class:`~jingxin.data.warehouse.connection.
    Warehouse`, its Ibis backend or a DuckDB connection), or None: the breakdowns are then
    left out with a note. ``breakdowns_shown`` False leaves them out whatever the
    warehouse, saying they are the operator's (an enterprise's report over the API). An
    unknown campaign is an InputError naming it; a campaign with nothing sent yet gives a
    report whose notes say why it is empty."""
    from jingxin.analytics.events import collect
    from jingxin.analytics.metrics import arm_table, experiment_rows, subscriber_outcomes

    now = now or datetime.now(UTC)
    zone = ZoneInfo(settings.policy.default_timezone)
    campaign = _campaign(store, campaign_id)
    collect(store, now=now, attribution_days=settings.analytics.attribution_days)
    experiment = f"campaign:{campaign_id}"
    started = campaign["started_at"] or campaign["created_at"]
    report = Report(
        title=f"活动报告 Campaign report: {campaign['name']}",
        subtitle=(f"campaign {campaign_id} · tenant {campaign['tenant_id']} · "
                  f"{campaign['category']} · {campaign['status']} · started "
                  f"{started.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"),
        generated_at=now.astimezone(zone))  # fmt: skip
    rows = experiment_rows(store, experiment, hours=True,  # read once for every table
                           attribution_days=settings.analytics.attribution_days)
    messages = _message_states(rows)
    report.add("messages", messages)
    try:
        arms = arm_table(store, experiment, tariff=settings.analytics.tariff, rows=rows)
    except InputError:  # neither assigned nor queued yet: a campaign, but no experiment
        report.notes.append(f"campaign {campaign_id} has no subscriber assigned and no message"
                            " queued yet: run it (`jingxin campaign run`)")  # fmt: skip
        return report
    if not pc.sum(messages.column("sent")).as_py():
        report.notes.append("no message was sent yet: run the worker (`jingxin worker`), "
                            "then report again")  # fmt: skip
    for row in arms.to_pylist():
        if row["assigned"] == 0:
            report.notes.append(f"arm {row['arm']} has no subscribers assigned: it is left "
                                "out of the comparisons")  # fmt: skip
    treated, held = _pooled(arms)
    _add_outcomes(report, arms, treated=treated, held=held, settings=settings)
    report.add("timeline", _timeline(rows, zone))
    from jingxin.analytics.report_breakdown import breakdowns

    anybody = treated["assigned"] + held["assigned"] > 0
    if breakdowns_shown:
        outcomes = subscriber_outcomes(store, experiment, rows=rows) if anybody else None
        tables, notes = breakdowns(outcomes, warehouse_con,
                                   as_of=started.astimezone(zone).date())  # fmt: skip
    else:
        tables, notes = {}, [OPERATORS_BREAKDOWNS]
    report.notes.extend(notes)
    for name, table in tables.items():
        report.add(name, table)
    report.tables = {name: report.tables[name] for name in sorted(
        report.tables, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))}
    report.charts = _campaign_charts(report)
    return report


def _campaign(store: Store, campaign_id: int) -> dict[str, Any]:
    from jingxin.data.store.models import Campaign

    with store.transaction() as session:
        row = session.get(Campaign, campaign_id)
        if row is None:
            raise InputError(f"campaign {campaign_id}: no such campaign (see `jingxin "
                             "campaign status`)")  # fmt: skip
        return {c: getattr(row, c) for c in ("name", "tenant_id", "category", "status",
                                             "created_at", "started_at")}  # fmt: skip


def _message_states(rows: ExperimentRows) -> pa.Table:
    """The campaign's messages by state and arm: messages, sent, parts and cost recorded."""
    assert rows.messages is not None
    return rows.messages.select(["state", "arm", "messages", "sent", "parts", "cost"])


def _pooled(arms: pa.Table) -> tuple[dict[str, Any], dict[str, Any]]:
    """The treated arms added up, and the hold-out (zeros when there is none)."""
    counts = [c for c in arms.column_names if c not in ("arm", "holdout")]
    treated, held = dict.fromkeys(counts, 0), dict.fromkeys(counts, 0)
    for row in arms.to_pylist():
        into = held if row["holdout"] else treated
        for name in counts:
            into[name] += row[name]
    return treated, held


def _add_outcomes(report: Report, arms: pa.Table, *, treated: dict[str, Any],
                  held: dict[str, Any], settings: Settings) -> None:
    from jingxin.analytics import report_stats

    report.add("arms", report_stats.arm_rates(arms))
    report.add("funnel", _funnel(treated))
    comparisons, notes = report_stats.comparisons(arms)
    report.notes.extend(notes)
    report.add("comparisons", comparisons)
    summary, headline, notes = report_stats.economics(
        treated=treated, held=held, n_treated=report_stats.subscribers(treated),
        n_held=report_stats.subscribers(held), tariff=settings.analytics.tariff)
    report.notes.extend(notes)
    report.add("summary", summary)
    report.headline = headline


def _funnel(treated: dict[str, Any]) -> pa.Table:
    """The treated arms' stages, each as a share of the assigned and of its base: sent of
    the assigned, delivered of the sent, and every response to the message (click, reply,
    opt-out, complaint) of the delivered - responses are not nested in each other. Orders
    count by assignment (whoever of the assigned ordered, message or not), so their base
    is the assigned."""
    stages = [*FUNNEL, *SIDE_OUTCOMES]
    counts = [int(treated[s]) for s, _ in stages]
    bases = [None, "assigned", "sent",
             *["assigned" if s == "ordered" else "delivered" for s, _ in stages[3:]]]
    assigned = treated["assigned"]
    return pa.table({
        "stage": [s for s, _ in stages], "label": [f"{zh} {s}" for s, zh in stages],
        "subscribers": pa.array(counts, pa.int64()),
        "of_assigned_share": pa.array([c / assigned if assigned else None for c in counts],
                                      pa.float64()),
        "base": pa.array(bases, pa.string()),
        "of_base_share": pa.array([c / treated[b] if b and treated[b] else None
                                   for c, b in zip(counts, bases, strict=True)], pa.float64()),
    })  # fmt: skip


def _timeline(rows: ExperimentRows, zone: ZoneInfo) -> pa.Table:
    """Events of the campaign per hour (in ``zone``) and kind, one column per kind; hours
    without events are filled in when the span is at most a month."""
    from jingxin.data.store.models.analytics import EVENT_KINDS

    kinds = [k for k in EVENT_KINDS if k != "held_out"]
    counts: dict[datetime, dict[str, int]] = {}
    for kind in kinds:
        events = rows.events.get(kind)
        if events is None or not events.num_rows:
            continue
        per_hour = pc.value_counts(events["hour"])  # hours × kinds, not events
        for bucket, n in zip(per_hour.field("values").to_pylist(),
                             per_hour.field("counts").to_pylist(), strict=True):
            counts.setdefault(_utc_hour(bucket), {})[kind] = int(n)
    hours = sorted(counts)
    if hours and (hours[-1] - hours[0]).total_seconds() <= 31 * 86400:
        step, first = 3600, hours[0].timestamp()
        hours = [datetime.fromtimestamp(first + i * step, UTC)
                 for i in range(int((hours[-1].timestamp() - first) // step) + 1)]
    data: dict[str, Any] = {"hour": pa.array([h.astimezone(zone) for h in hours],
                                             pa.timestamp("us", tz=zone.key))}  # fmt: skip
    for kind in kinds:
        data[kind] = pa.array([counts.get(h, {}).get(kind, 0) for h in hours], pa.int64())
    return pa.table(data)


def _utc_hour(bucket: str) -> datetime:
    """``YYYY-MM-DD HH`` (UTC) as an aware datetime."""
    return datetime.strptime(bucket, "%Y-%m-%d %H").replace(tzinfo=UTC)


def _campaign_charts(report: Report) -> list[Chart]:
    from jingxin.analytics import charts

    tables, out = report.tables, []
    funnel = tables["funnel"].slice(0, len(FUNNEL))
    out.append(charts.funnel(funnel, title="转化漏斗 Funnel (treated arms)"))
    timeline = tables.get("timeline")
    if timeline is not None and timeline.num_rows:
        shown = [k for k in timeline.column_names[1:] if pc.sum(timeline[k]).as_py()]
        out.append(charts.lines(timeline, title="每小时事件 Events per hour", x="hour",
                                series=shown, y_title="events"))  # fmt: skip
    arms = tables["arms"]
    if arms.num_rows:
        out.append(charts.bars(
            arms, title="各组订购率 Order rate by arm (95% Wilson interval)", x="arm",
            series=[("ordered_rate", "ordered"), ("clicked_rate", "clicked")], percent=True,
            errors={"ordered_rate": ("ordered_rate_low", "ordered_rate_high"),
                    "clicked_rate": ("clicked_rate_low", "clicked_rate_high")}))  # fmt: skip
    for name, title in (("by_segment", "按客户细分 By segment"), ("by_tenure", "按在网时长 By tenure"),
                        ("by_region", "按区县 By district")):  # fmt: skip
        table = tables.get(name)
        if table is not None and table.num_rows:
            out.append(charts.bars(
                table, title=f"{title}: 订购率 order rate, treated vs hold-out",
                x=table.column_names[0], percent=True,
                series=[("ordered_rate", "treated 触达组"), ("holdout_rate", "hold-out 对照组")]))
    return out
