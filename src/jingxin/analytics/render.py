"""Writing a :class:`~jingxin.analytics.report.Report` to a file: HTML, CSV or XLSX.

* **HTML** - one self-contained file: the styles and plotly.js are inlined (plotly.js
  once, in the head; every chart draws with it), nothing is fetched, so the file opens
  offline and can be mailed. Headings are in Chinese and English; tables are HTML tables
  (rates as percentages, money in yuan with two decimals).
* **CSV** - one long UTF-8 file: a ``table`` column naming the table each row belongs to,
  then the columns of every table in order of first appearance; a row leaves the columns
  of other tables empty. The report's notes are the table ``notes`` (column ``note``).
  Numbers are written in full precision.
* **XLSX** - one sheet per table (``notes`` first), headers bold, the header row frozen,
  widths fitted to the contents.

A file is written next to its final path and moved into place when complete: a report is
never left half-written.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.analytics.report import Report

FORMATS = (".html", ".csv", ".xlsx")
NOTES_TABLE = "notes"
SHOWN = "shown"  # a summary's formatted values (the HTML shows them instead of ``value``)
FOLD_ROWS = 40  # longer tables are folded (<details>) in the HTML
# Columns shown as percentages: rates, their interval ends, shares, differences of rates.
PERCENT_SUFFIXES = ("_rate", "_rate_low", "_rate_high", "_share")
PERCENT_NAMES = {"rate", "diff", "diff_low", "diff_high", "lift", "roi", "conversion",
                 "share", "converted_share"}  # fmt: skip
MONEY_NAMES = {"value", "cost", "revenue", "incremental_revenue", "mean_saving", "saving",
               "mean_value", "current_cost", "best_cost"}  # fmt: skip
# Chinese labels over the (English, machine) column names in the HTML.
COLUMN_LABELS = {
    "arm": "分组", "holdout": "对照组", "assigned": "分配", "treated": "触达组",
    "held_out": "对照", "sent": "发送", "delivered": "送达", "failed": "失败",
    "clicked": "点击", "replied": "回复", "ordered": "订购", "opted_out": "退订",
    "complained": "投诉", "value": "订购金额(元)", "parts": "条数", "cost": "成本(元)",
    "stage": "阶段", "label": "名称", "subscribers": "用户数", "measure": "指标",
    "metric": "指标", "control": "对照", "diff": "差值", "lift": "相对提升",
    "p_value": "p值", "p_adjusted": "校正p值", "incremental": "增量", "hour": "小时",
    "segment": "细分", "region": "区县", "tenure": "在网时长", "plan_id": "套餐",
    "state": "状态", "messages": "短信数", "zone": "专区", "orders": "订单",
    "branch": "分公司", "rate": "比率", "note": "说明", "mismatch": "适配",
    "base": "基数", "of_base_share": "占基数", "of_assigned_share": "占分配",
    "delivered_rate": "送达率", "clicked_rate": "点击率", "replied_rate": "回复率",
    "ordered_rate": "订购率", "opted_out_rate": "退订率", "complained_rate": "投诉率",
    "holdout_rate": "对照组订购率", "control_rate": "对照比率", "n": "人数",
    "successes": "成功数", "significant": "显著", "chain": "推荐链", "points": "积分",
    "referrals": "推荐", "viewers": "浏览用户", "placed": "已办理", "conversion": "转化率",
}  # fmt: skip


def write(report: Report, out: Path) -> Path:
    """Write ``report`` to ``out`` in the format its suffix names; return ``out``."""
    out = Path(out)
    writers: dict[str, Callable[[Report, Path], None]] = {
        ".html": write_html, ".csv": write_csv, ".xlsx": write_xlsx}
    suffix = check_format(out)
    with _replacing(out) as part:
        writers[suffix](report, part)
    return out


def check_format(out: Path) -> str:
    """The format ``out``'s suffix names (``.html``, ``.csv``, ``.xlsx``), or an
    InputError naming the file."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"--out {out}: unknown report format {Path(out).suffix or '(no suffix)'!r};"
                         f" use one of {', '.join(FORMATS)}")  # fmt: skip
    return suffix


@contextmanager
def _replacing(out: Path) -> Iterator[Path]:
    """A temporary path beside ``out``, moved onto it when the block succeeds."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix,
                                        dir=out.parent)  # fmt: skip
        os.close(handle)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write the report there ({exc.strerror})") from exc
    part = Path(name)
    try:
        yield part
        os.replace(part, out)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write the report ({exc.strerror})") from exc
    finally:
        part.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- HTML


def write_html(report: Report, out: Path) -> None:
    out.write_text(html(report), encoding="utf-8")


def html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    import jinja2

    from jingxin import __version__
    from jingxin.analytics.charts import chart_html, plotly_js

    env = jinja2.Environment(loader=jinja2.PackageLoader("jingxin.analytics", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)  # fmt: skip
    env.globals["zip"] = zip
    charts = [{"title": c.title, "note": c.note, "html": chart_html(c, div_id=f"chart-{i}")}
              for i, c in enumerate(report.charts, start=1)]  # fmt: skip
    tables = [_html_table(name, table, report.headings.get(name, name))
              for name, table in report.tables.items()]  # fmt: skip
    return env.get_template("report.html.j2").render(
        report=report, charts=charts, tables=tables, version=__version__,
        plotly_js=plotly_js() if charts else "",
        generated=f"{report.generated_at:%Y-%m-%d %H:%M %Z}".strip())


def _html_table(name: str, table: pa.Table, heading: str) -> dict[str, Any]:
    if SHOWN in table.column_names and "value" in table.column_names:
        # A summary of mixed measures: its formatted text stands in for the raw value.
        table = table.drop_columns("value")
    columns, formats = [], []
    for field in table.schema:
        text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        label = "值" if field.name == SHOWN else COLUMN_LABELS.get(field.name, "")
        columns.append({"name": field.name, "label": label,
                        "align": "text" if text else ""})
        formats.append(_formatter(field))
    data = [table.column(i).to_pylist() for i in range(table.num_columns)]
    rows = [[fmt(v) for fmt, v in zip(formats, row, strict=True)]
            for row in zip(*data, strict=True)] if data else []  # fmt: skip
    return {"name": name, "heading": heading, "columns": columns, "rows": rows,
            "folded": len(rows) > FOLD_ROWS}


def _formatter(field: pa.Field) -> Callable[[Any], str]:
    name, kind = field.name, field.type

    def guard(fmt: Callable[[Any], str]) -> Callable[[Any], str]:
        def shown(value: Any) -> str:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return "–"
            return fmt(value)
        return shown

    if pa.types.is_boolean(kind):
        return guard(lambda v: "是 yes" if v else "否 no")
    if pa.types.is_integer(kind):
        return guard(lambda v: f"{v:,}")
    if pa.types.is_floating(kind):
        if name in PERCENT_NAMES or name.endswith(PERCENT_SUFFIXES):
            return guard(lambda v: f"{v:.2%}")
        if name in MONEY_NAMES or name.endswith(("_cost", "_value", "_revenue", "_yuan")):
            return guard(lambda v: f"{v:,.2f}")
        if name.startswith("p_"):
            return guard(lambda v: f"{v:.4f}")
        return guard(lambda v: f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}")
    if pa.types.is_timestamp(kind):
        return guard(lambda v: f"{v:%Y-%m-%d %H:%M}")
    return guard(str)


# ----------------------------------------------------------------------------- CSV


def long_table(report: Report) -> pa.Table:
    """Every table of the report (and its notes) in one table: ``table`` then the union of
    the columns, as text, numbers in full precision."""
    parts = []
    for name, table in _with_notes(report).items():
        columns = {"table": pa.array([name] * table.num_rows, pa.string())}
        for field, column in zip(table.schema, table.columns, strict=True):
            columns[field.name] = _as_text(column, field.type)
        parts.append(pa.table(columns))
    if not parts:
        return pa.table({"table": pa.array([], pa.string())})
    return pa.concat_tables(parts, promote_options="default")


def _as_text(column: pa.ChunkedArray, kind: pa.DataType) -> pa.Array:
    if pa.types.is_floating(kind):
        return pa.array([None if v is None else repr(float(v)) for v in column.to_pylist()],
                        pa.string())  # fmt: skip
    if pa.types.is_boolean(kind):
        return pa.array([None if v is None else ("true" if v else "false")
                         for v in column.to_pylist()], pa.string())  # fmt: skip
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return pa.array([None if v is None else v.isoformat() for v in column.to_pylist()],
                        pa.string())  # fmt: skip
    return column.cast(pa.string()).combine_chunks()


def write_csv(report: Report, out: Path) -> None:
    import pyarrow.csv as pacsv

    pacsv.write_csv(long_table(report), str(out),
                    write_options=pacsv.WriteOptions(quoting_style="needed"))


def _with_notes(report: Report) -> dict[str, pa.Table]:
    notes = {NOTES_TABLE: pa.table({"note": pa.array(report.notes, pa.string())})}
    return notes | {k: v for k, v in report.tables.items() if k != NOTES_TABLE}


# ----------------------------------------------------------------------------- XLSX


def write_xlsx(report: Report, out: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    bold, used = Font(bold=True), set()
    for name, table in _with_notes(report).items():
        sheet = book.create_sheet(_sheet_name(name, used))
        sheet.append(table.column_names)
        for cell in sheet[1]:
            cell.font = bold
        data = [_cells(table.column(i)) for i in range(table.num_columns)]
        for row in zip(*data, strict=True):
            sheet.append(row)
        sheet.freeze_panes = "A2"
        for i, (header, values) in enumerate(zip(table.column_names, data, strict=True), 1):
            longest = max([_width(header), *(_width(v) for v in values[:2000])])
            sheet.column_dimensions[get_column_letter(i)].width = min(60, longest + 2)
    book.save(out)


def _cells(column: pa.ChunkedArray) -> list[Any]:
    values = column.to_pylist()
    if pa.types.is_timestamp(column.type):
        # Excel has no time zone: local wall time, as the report shows it.
        return [v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v for v in values]
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]


def _width(value: Any) -> int:
    if value is None:
        return 0
    text = f"{value:.4f}" if isinstance(value, float) else str(value)
    # A CJK character is two columns wide.
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _sheet_name(name: str, used: set[str]) -> str:
    """An Excel sheet name: at most 31 characters, none of []:*?/\\, unique."""
    clean = "".join("_" if ch in "[]:*?/\\" else ch for ch in name)[:31] or "table"
    candidate, n = clean, 2
    while candidate.lower() in used:
        candidate = f"{clean[:28]}~{n}"
        n += 1
    used.add(candidate.lower())
    return candidate
