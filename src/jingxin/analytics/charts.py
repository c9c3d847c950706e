"""The charts of a report: plotly figures built from a report's Arrow tables.

A :class:`Chart` is a titled plotly figure; :func:`chart_html` renders it as a ``<div>``
and a script that draws it with the plotly.js the page carries once, inlined (a report
works offline: nothing is fetched). The figures are made from the same tables the report
lists, so a chart never shows a number the tables do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

# Colours that read on screen and in print; one per event kind so every chart agrees.
KIND_COLOURS = {
    "sent": "#4c78a8", "delivered": "#72b7b2", "failed": "#9d755d", "clicked": "#f58518",
    "replied": "#eeca3b", "ordered": "#54a24b", "opted_out": "#e45756",
    "complained": "#b279a2", "held_out": "#bab0ac",
}  # fmt: skip
TREATED_COLOUR, HOLDOUT_COLOUR = "#4c78a8", "#bab0ac"
# Offline and quiet: no "edit in Chart Studio" link, no logo, no MathJax.
PLOT_CONFIG = {"displaylogo": False, "showLink": False, "responsive": True,
               "modeBarButtonsToRemove": ["sendDataToCloud"]}  # fmt: skip


@dataclass
class Chart:
    """A figure with its (bilingual) title; ``note`` says how to read it, if need be."""

    title: str
    figure: Any  # plotly.graph_objects.Figure
    note: str = ""


def chart_html(chart: Chart, *, div_id: str) -> str:
    """The chart as a ``<div>`` and its drawing script, without plotly.js itself (the
    page includes it once)."""
    return chart.figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                config=PLOT_CONFIG, include_mathjax=False)  # fmt: skip


def plotly_js() -> str:
    """The plotly.js bundle that ships with the plotly package (no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _figure(**layout: Any) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.update_layout(template="plotly_white", height=360,
                         margin={"l": 60, "r": 20, "t": 30, "b": 60},
                         font={"family": "system-ui, 'PingFang SC', 'Microsoft YaHei', "
                                         "sans-serif"}, **layout)  # fmt: skip
    return figure


def _column(table: pa.Table, name: str) -> list[Any]:
    return table.column(name).to_pylist()


def funnel(table: pa.Table, *, title: str, stage: str = "label",
           value: str = "subscribers") -> Chart:
    """A funnel of ``value`` per ``stage``, in the table's order."""
    import plotly.graph_objects as go

    figure = _figure()
    figure.add_trace(go.Funnel(y=_column(table, stage), x=_column(table, value),
                               textinfo="value+percent initial",
                               marker={"color": TREATED_COLOUR}))  # fmt: skip
    return Chart(title, figure)


def lines(table: pa.Table, *, title: str, x: str, series: Sequence[str],
          y_title: str = "") -> Chart:
    """One line per column of ``series`` against ``x`` (e.g. events per hour by kind)."""
    import plotly.graph_objects as go

    figure = _figure(xaxis_title=x, yaxis_title=y_title, hovermode="x unified")
    xs = _column(table, x)
    for name in series:
        figure.add_trace(go.Scatter(x=xs, y=_column(table, name), name=name, mode="lines",
                                    line={"color": KIND_COLOURS.get(name)}))  # fmt: skip
    return Chart(title, figure)


def bars(table: pa.Table, *, title: str, x: str, series: Sequence[tuple[str, str]],
         percent: bool = False, errors: dict[str, tuple[str, str]] | None = None,
         stacked: bool = False, horizontal: bool = False, note: str = "") -> Chart:
    """Bars of each ``(column, legend name)`` in ``series`` per ``x`` (grouped, or
    stacked). ``errors`` maps a column to its (low, high) interval columns."""
    import plotly.graph_objects as go

    figure = _figure(barmode="stack" if stacked else "group")
    if percent:
        axis = {"tickformat": ".1%"}
        figure.update_layout(xaxis=axis) if horizontal else figure.update_layout(yaxis=axis)
    labels = [str(v) for v in _column(table, x)]
    palette = [TREATED_COLOUR, HOLDOUT_COLOUR, "#f58518", "#54a24b", "#e45756", "#b279a2"]
    for i, (column, name) in enumerate(series):
        values = _column(table, column)
        error = None
        if errors and column in errors:
            low, high = (_column(table, c) for c in errors[column])
            error = {"type": "data", "symmetric": False,
                     "array": [_gap(h, v) for v, h in zip(values, high, strict=True)],
                     "arrayminus": [_gap(v, lo) for v, lo in zip(values, low, strict=True)]}
        colour = KIND_COLOURS.get(column, palette[i % len(palette)])
        if horizontal:
            trace = go.Bar(y=labels, x=values, name=name, orientation="h", error_x=error,
                           marker={"color": colour})  # fmt: skip
        else:
            trace = go.Bar(x=labels, y=values, name=name, error_y=error,
                           marker={"color": colour})  # fmt: skip
        figure.add_trace(trace)
    if horizontal:
        figure.update_layout(height=max(360, 28 * len(labels) + 80),
                             yaxis={"autorange": "reversed", "type": "category"})
    else:
        figure.update_layout(xaxis={"type": "category"})
    return Chart(title, figure, note)


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(0.0, a - b)


def pie(table: pa.Table, *, title: str, names: str, values: str) -> Chart:
    """Shares of ``values`` by ``names``."""
    import plotly.graph_objects as go

    figure = _figure()
    figure.add_trace(go.Pie(labels=[str(v) for v in _column(table, names)],
                            values=_column(table, values), hole=0.4, sort=False))
    return Chart(title, figure)
