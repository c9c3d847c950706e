"""``jingxin audience``: segments (count, preview, explain, export), the feature build,
plan fit, propensity models (and why a row scores as it does), clusters and cross-sell
rules.

Every command opens the warehouse the settings name (``--warehouse PATH`` for another
DuckDB file, ``--spark`` for PySpark local mode) and turns our errors into clean messages
through the app's entry point.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from jingxin.data.warehouse.connection import Warehouse

audience_app = typer.Typer(help="Audiences: segments, features, plan fit, models, clusters.",
                           no_args_is_help=True)
console = Console()

WarehouseOpt = typer.Option(None, "--warehouse", help="DuckDB warehouse file (default: "
                            "settings).")
SparkOpt = typer.Option(False, "--spark", help="Run on PySpark local mode.")
AsOfOpt = typer.Option(None, "--as-of", help="As-of date YYYY-MM-DD (default: the month "
                       "after the last month of usage).")


def _open(path: Path | None, spark: bool) -> Warehouse:
    """The warehouse of a command. With ``--spark`` (or, without ``--warehouse``, the
    "pyspark" backend in the settings): PySpark local mode over the same tables, read
    from ``warehouse.parquet_dir`` when set and no ``--warehouse`` is given, else from
    the DuckDB warehouse exported to Parquet under var/spark/ (reused while the file is
    unchanged)."""
    from jingxin.config import load_settings
    from jingxin.data.warehouse.connection import (
        open_duckdb,
        open_spark_over,
        open_warehouse,
    )

    settings = load_settings()
    if spark or (path is None and settings.warehouse.backend == "pyspark"):
        return open_spark_over(settings.warehouse, duckdb_path=path,
                               export_dir=settings.var_dir() / "spark")
    if path is not None:
        return open_duckdb(path)
    return open_warehouse(settings.warehouse)


def _models_dir() -> Path:
    from jingxin.config import load_settings

    return load_settings().var_dir() / "models"


def _date(text: str | None) -> dt.date | None:
    from jingxin.errors import InputError

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of: {text!r} is not a date (YYYY-MM-DD)") from None


def _as_of(warehouse: Warehouse, text: str | None) -> dt.date:
    from jingxin.audience.store import usage_as_of

    return _date(text) or usage_as_of(warehouse)


def _compile(spec: Path, warehouse: Warehouse):
    from jingxin.audience.compile import compile_spec

    compiled = compile_spec(warehouse, spec)
    for w in compiled.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    return compiled


def _missing(value: object) -> bool:
    import pandas as pd

    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other containers are never "missing"
        return False


def _table(df, title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col))
    for row in df.itertuples(index=False):
        table.add_row(*["" if _missing(v) else str(v) for v in row])
    console.print(table)


@audience_app.command()
def count(spec: Path, warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt) -> None:
    """How many subscribers SPEC selects."""
    from jingxin.audience.explain import count as count_

    wh = _open(warehouse, spark)
    n = count_(_compile(spec, wh))
    console.print(f"{n}" if n else "0 (the segment matches nothing)", highlight=False)


@audience_app.command()
def preview(spec: Path, rows: int = typer.Option(10, "--rows"),
            warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt) -> None:
    """Sample rows of SPEC, msisdns masked."""
    from jingxin.audience.explain import preview as preview_

    _table(preview_(_compile(spec, _open(warehouse, spark)), rows=rows))


@audience_app.command()
def explain(
    spec: Path,
    overlap: list[Path] = typer.Option([], "--overlap", help="Another spec to compare."),
    show_sql: bool = typer.Option(True, "--sql/--no-sql"),
    warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt,
) -> None:
    """Count, breakdowns by plan / tenure group / region, overlaps and the compiled SQL."""
    from jingxin.audience import explain as ex

    wh = _open(warehouse, spark)
    compiled = _compile(spec, wh)
    n = ex.count(compiled)
    console.print(f"[bold]{compiled.prepared.spec.name}[/]: {n} subscribers"
                  + ("" if n else " (the segment matches nothing)")
                  + (f", features as of {compiled.as_of}" if compiled.as_of else ""))
    for name, df in ex.breakdown(wh, compiled).items():
        _table(df, title=f"by {name}")
    for other in overlap:
        o = ex.overlap(compiled, _compile(other, wh), name=str(other))
        console.print(f"overlap with {o.other}: {o.both} of {o.this_count} here and "
                      f"{o.other_count} there (Jaccard {o.jaccard:.3f})", highlight=False)
    if show_sql:
        console.print(ex.sql(compiled), highlight=False, markup=False)


@audience_app.command()
def export(spec: Path, out: Path = typer.Option(..., "--out", help=".parquet or .csv"),
           warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt) -> None:
    """Write SPEC's msisdns (and offer columns) to a file for a campaign."""
    from jingxin.audience.explain import export as export_

    n = export_(_compile(spec, _open(warehouse, spark)), out=out)
    console.print(f"wrote {n} subscribers to {out}", highlight=False)


@audience_app.command()
def features(as_of: str | None = AsOfOpt, warehouse: Path | None = WarehouseOpt,
             spark: bool = SparkOpt) -> None:
    """Build the features table as of a date (replaces that date's earlier build)."""
    from jingxin.audience.features import build_features

    wh = _open(warehouse, spark)
    day = _as_of(wh, as_of)
    n = build_features(wh, as_of=day)
    console.print(f"features as of {day}: {n} subscribers", highlight=False)


@audience_app.command()
def planfit(as_of: str | None = AsOfOpt,
            report: bool = typer.Option(False, "--report", help="Mismatches by plan."),
            show: int = typer.Option(5, "--show", help="Recommendations to print."),
            top: int = typer.Option(20, "--top", help="Rows of the report (0: all)."),
            warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt) -> None:
    """Best plan per subscriber for the last three months' usage (table plan_fit)."""
    from jingxin.audience.planfit import build_plan_fit, mismatch_report

    wh = _open(warehouse, spark)
    day = _as_of(wh, as_of)
    n = build_plan_fit(wh, as_of=day)
    t = wh.table("plan_fit")
    t = t.filter((t.as_of == day) & t.message.notnull())
    console.print(f"plan fit as of {day}: {n} subscribers, "
                  f"{int(t.count().execute())} with a recommendation", highlight=False)
    if show:
        sample = t.order_by("subscriber_id").limit(show).select(
            "subscriber_id", "plan_id", "best_plan_id", "saving", "message").to_pandas()
        # One line each: the renewal wording is the point, so it is never truncated.
        for row in sample.itertuples():
            console.print(f"  subscriber {row.subscriber_id}: {row.plan_id} → {row.best_plan_id} "
                          f"({row.saving:.2f} 元/月)  {row.message}", highlight=False)
    if report:
        frame = mismatch_report(wh, as_of=day).to_pandas()
        title = "mismatched by plan" + (f" (top {top} of {len(frame)})" if top and len(frame) > top else "")
        _table(frame.head(top) if top else frame, title=title)


@audience_app.command("train-response")
def train_response(warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt) -> None:
    """Train the offer-response model on the offers table."""
    from jingxin.audience import propensity
    from jingxin.cli.audience_models import print_trained as _print_trained

    trained = propensity.train(_open(warehouse, spark), model="response",
                               models_dir=_models_dir())
    _print_trained(trained, _models_dir() / "response.joblib")


@audience_app.command()
def score(model: str = typer.Option("churn", "--model", help="churn or response"),
          as_of: str | None = typer.Option(None, "--as-of", help="Feature build to score."),
          warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt) -> None:
    """Score every subscriber with a trained model into the scores table."""
    from jingxin.audience import propensity

    n = propensity.score(_open(warehouse, spark), model=model, models_dir=_models_dir(),
                         as_of=_date(as_of))
    console.print(f"scored {n} subscribers with {model}", highlight=False)


@audience_app.command()
def clusters(k: int | None = typer.Option(None, "--k", help="Clusters (default: by "
                                          "silhouette)."),
             as_of: str | None = typer.Option(None, "--as-of"), seed: int = 0,
             warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt) -> None:
    """k-means behaviour clusters with a profile per cluster (table clusters)."""
    import ibis

    from jingxin.audience.clusters import cluster
    from jingxin.audience.store import replace_partition

    wh = _open(warehouse, spark)
    result = cluster(wh, as_of=_date(as_of), k=k, seed=seed)
    day = result.assignments["as_of"].iloc[0]
    expr = ibis.memtable(result.assignments)
    replace_partition(wh, table="clusters", expr=expr.mutate(as_of=expr.as_of.cast("date")),
                      key="as_of", value=day)
    how = f"silhouette {result.silhouette:.3f}" if result.silhouette is not None else "given"
    console.print(f"k = {result.k} ({how}); assignments in table 'clusters'",
                  highlight=False)
    _table(result.profile, title="cluster profiles")


@audience_app.command()
def crosssell(as_of: str | None = AsOfOpt,
              min_support: float = typer.Option(0.01, "--min-support"),
              min_confidence: float = typer.Option(0.2, "--min-confidence"),
              top: int = typer.Option(20, "--top"),
              out: Path | None = typer.Option(None, "--out", help="Write all rules (CSV)."),
              warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt) -> None:
    """Association rules over product holdings: holders of X also take Y."""
    from jingxin.audience.crosssell import rules

    wh = _open(warehouse, spark)
    r = rules(wh, as_of=_as_of(wh, as_of), min_support=min_support,
              min_confidence=min_confidence)
    if r.empty:
        console.print("no rule passes the thresholds")
        return
    _table(r.head(top).drop(columns=["sentence"]), title="rules by lift")
    for sentence in r["sentence"].head(top):
        console.print(sentence, highlight=False)
    if out is not None:
        r.to_csv(out, index=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands (and the models', :mod:`jingxin.cli.audience_models`) to
    ``app``."""
    import importlib

    importlib.import_module("jingxin.cli.audience_models")  # its commands join audience_app
    app.add_typer(audience_app, name="audience")
