"""``jingxin audience train-churn`` and ``explain-score``: a churn model on the warehouse's
labels or on any CSV, with the checks that make it trustworthy (label values, rows left
out, a leakage guard, hold-out and cross-validated AUC, a refit) and per-row reasons
(:mod:`jingxin.audience.tabular`, :mod:`jingxin.audience.trust`).

``jingxin audience train-uplift`` and ``score-uplift``: who is persuadable, learnt from a
campaign's treated and held-out subscribers (:mod:`jingxin.audience.uplift`), measured by
the Qini curve on a test part (:mod:`jingxin.audience.qini`).

Registered on the ``audience`` group by :mod:`jingxin.cli.audience`."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from jingxin.cli.audience import (
    SparkOpt,
    WarehouseOpt,
    _missing,
    _models_dir,
    _open,
    audience_app,
    console,
)


def print_trained(trained, path: Path) -> None:
    from jingxin.audience.tabular import MAX_CATEGORIES

    console.print(f"AUC {trained.auc:.4f} on the hold-out ({trained.holdout}; "
                  f"{trained.train_rows} train / {trained.test_rows} test rows)",
                  highlight=False, soft_wrap=True)
    if trained.cv_auc is not None:
        mean, std = trained.cv_auc
        console.print(f"cross-validation: AUC {mean:.4f} ± {std:.4f} (mean ± std over "
                      f"{trained.folds} stratified folds of all rows)", highlight=False, soft_wrap=True)
    if trained.refit:
        console.print(f"refit on all {trained.train_rows + trained.test_rows} rows after "
                      "evaluation: the saved model is the refit one; the AUC above is the "
                      "hold-out's", highlight=False, soft_wrap=True)
    for note in trained.left_out:
        console.print(f"left out: {note}", highlight=False, soft_wrap=True)
    console.print("main features (permutation importance, AUC drop):", soft_wrap=True)
    for name, value in trained.importance:
        console.print(f"  {name:<28} {value:+.4f}", highlight=False, soft_wrap=True)
    if trained.dropped:
        console.print(f"columns left out (empty, or text with more than {MAX_CATEGORIES} "
                      f"values: identifiers, free text): "
                      f"{', '.join(map(str, trained.dropped))}", highlight=False, soft_wrap=True)
    for warning in trained.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    console.print(f"model saved to {path}", highlight=False, soft_wrap=True)


@audience_app.command("train-churn")
def train_churn(
    csv: Path | None = typer.Option(None, "--csv", help="A tabular export to train on."),
    label: str = typer.Option("churned_3m", "--label", help="Label column of the CSV."),
    positive: str | None = typer.Option(
        None, "--positive", help="Label value meaning churned (e.g. Churned); default: "
        "yes/no, true/false, 1/0."),
    drop_rows: list[str] = typer.Option(
        [], "--drop-rows", help="COLUMN=VALUE: rows to leave out (repeatable), e.g. "
        "'Customer Status=Joined'."),
    time_column: str | None = typer.Option(None, "--time-column",
                                           help="Period column for a time-based hold-out."),
    id_column: list[str] = typer.Option([], "--id-column", help="Columns not to learn from."),
    allow_leaky: list[str] = typer.Option(
        [], "--allow-leaky", help="Keep a column that alone predicts the label (warned)."),
    test_size: float = typer.Option(0.25, "--test-size", help="Share of rows held out."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, folds and model."),
    folds: int = typer.Option(0, "--folds", help="Also K-fold stratified cross-validation."),
    refit: bool = typer.Option(False, "--refit", help="Refit on all rows after evaluation."),
    score_out: Path | None = typer.Option(
        None, "--score-out", help="Write every row's score, held_out and reasons (CSV)."),
    warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt,
) -> None:
    """Train the churn model: on the warehouse labels, or on any CSV with --csv."""
    from jingxin.audience import propensity, tabular

    if csv is None:
        trained = propensity.train(_open(warehouse, spark), model="churn",
                                   models_dir=_models_dir())
        print_trained(trained, _models_dir() / "churn.joblib")
        return
    setup = tabular.Setup(label=label, positive=positive,
                          drop_rows=tuple(_column_value(d) for d in drop_rows),
                          time_column=time_column, exclude=frozenset(id_column),
                          allow_leaky=frozenset(allow_leaky), test_size=test_size,
                          folds=folds, refit=refit, seed=seed)
    frame = _read_csv(csv)
    training = tabular.train(frame, setup, where=str(csv))
    path = tabular.save(training.trained, _models_dir() / f"churn-{csv.stem}.joblib")
    print_trained(training.trained, path)
    if score_out is not None:
        _write_scores(frame, training, score_out)


def _column_value(text: str) -> tuple[str, str]:
    """``'Customer Status=Joined'`` → ``('Customer Status', 'Joined')``."""
    from jingxin.errors import InputError

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise InputError(f"--drop-rows {text!r}: write COLUMN=VALUE, e.g. "
                         "'Customer Status=Joined'")
    return name, value


def _write_scores(frame, training, out: Path) -> None:
    """Every row of the file with its score, whether it was held out, and its reasons;
    written to a temporary file first, so a failure leaves no half-written CSV."""
    trained = training.trained
    # The score stays the last column, as it was before held_out and reasons came.
    scored = frame.assign(held_out=frame.index.isin(training.held_out),
                          reasons=trained.reasons(frame, top=3),
                          score=trained.score(frame).round(5))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    scored.to_csv(tmp, index=False)
    tmp.replace(out)
    console.print(f"scores of {len(scored)} rows written to {out} (held_out: "
                  f"{len(training.held_out)}; reasons in {trained.unit} points)",
                  highlight=False, soft_wrap=True)


def _read_csv(path: Path):
    import pandas as pd

    from jingxin.errors import ImportFileError

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ImportFileError(f"{path}: cannot read the CSV: {exc}") from exc
    if frame.empty:
        raise ImportFileError(f"{path}: no rows")
    return frame


@audience_app.command("explain-score")
def explain_score(
    model: Path = typer.Option(..., "--model", help="A model file (train-churn prints it)."),
    csv: Path = typer.Option(..., "--csv", help="The rows to explain (same columns)."),
    row: int = typer.Option(..., "--row", help="Data row: 1 = the first row under the "
                            "header."),
    top: int = typer.Option(10, "--top", help="Features to list."),
) -> None:
    """Why one row scores as it does: each feature's contribution, largest first."""
    from jingxin.audience import tabular
    from jingxin.errors import InputError

    trained = tabular.load(model)
    frame = _read_csv(csv)
    if not 1 <= row <= len(frame):
        raise InputError(f"--row {row}: {csv} has rows 1 to {len(frame)} (1 = the first "
                         "row under the header)")
    reference = trained.ensure_reference(frame)
    one = frame.iloc[[row - 1]]
    contrib = trained.contributions(one).iloc[0]
    console.print(f"{csv} row {row} (line {row + 1}): score {trained.score(one)[0]:.4f} "
                  f"for {str(trained.label).strip()!r}", highlight=False, soft_wrap=True)
    typical = {**reference.median, **reference.mode}
    values = one.rename(columns=lambda c: str(c).strip()).iloc[0]
    lines = contrib.reindex(contrib.abs().sort_values(ascending=False).index).head(top)
    console.print(f"  {'feature':<28} {'value':>14} {'typical':>14}  contribution "
                  f"({trained.unit}{' points' if trained.unit == 'score' else ''})",
                  highlight=False, soft_wrap=True)
    for name, value in lines.items():
        console.print(f"  {name!s:<28} {_cell(values.get(str(name).strip())):>14} "
                      f"{_cell(typical.get(name)):>14}  {value:+.4f}", highlight=False, soft_wrap=True)
    console.print(f"reasons: {trained.reasons(one).iloc[0]}", highlight=False, soft_wrap=True)


def _cell(value: object) -> str:
    if _missing(value):
        return "missing"
    return f"{value:g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------- uplift


@audience_app.command("train-uplift")
def train_uplift(
    campaign: int = typer.Option(..., "--campaign", help="The campaign's id (sent with a "
                                 "hold-out)."),
    outcome: str = typer.Option("ordered", "--outcome", help="clicked, replied or ordered."),
    method: str = typer.Option("two-model", "--method", help="two-model or transformed."),
    learner: str = typer.Option("gbm", "--learner", help="gbm (gradient boosting) or linear "
                                "(logistic / ridge regression)."),
    test_size: float = typer.Option(0.3, "--test-size", help="Share of subscribers kept to "
                                    "measure the model on."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and the model."),
    as_of: str | None = typer.Option(None, "--as-of", help="Feature build (default: the "
                                     "latest on or before the campaign started)."),
    out: Path | None = typer.Option(None, "--out", help="Model file (default: "
                                    "var/models/uplift-campaign-ID.joblib)."),
    score_out: Path | None = typer.Option(None, "--score-out", help="Every subscriber's "
                                          "uplift score, group, outcome and part (CSV)."),
    chart: Path | None = typer.Option(None, "--chart", help="The Qini curve of the test part "
                                      "(self-contained HTML)."),
    warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt,
) -> None:
    """Learn who is persuadable from a campaign's treated and held-out subscribers."""
    from jingxin.audience import uplift
    from jingxin.audience.uplift_campaign import campaign_rows
    from jingxin.cli.arguments import settings_and_store
    from jingxin.cli.audience import _date

    settings, store = settings_and_store()
    try:
        rows = campaign_rows(store, _open(warehouse, spark), campaign_id=campaign,
                             outcome=outcome, as_of=_date(as_of),
                             attribution_days=settings.analytics.attribution_days)
    finally:
        store.dispose()
    _print_groups(rows)
    training = uplift.train_uplift(
        rows.features(), rows.treated, rows.outcomes, method=method, learner=learner,
        test_size=test_size, seed=seed, outcome_name=outcome, where=f"campaign {campaign}")
    model = training.model
    model.source, model.features_as_of = rows.experiment, rows.as_of.isoformat()
    _print_evaluation(model)
    path = uplift.save(model, out or _models_dir() / f"uplift-campaign-{campaign}.joblib")
    console.print(f"model saved to {path}", highlight=False, soft_wrap=True)
    if score_out is not None:
        frame = rows.frame[["msisdn", "subscriber_id", "treated", outcome]].assign(
            test=training.test, uplift=training.scores.round(5))
        _write_frame(frame, score_out)
        console.print(f"scores of {len(frame)} subscribers written to {score_out}",
                      highlight=False, soft_wrap=True)
    if chart is not None:
        _write_qini_chart(rows, training, chart, campaign=campaign)


def _pp(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:+.2f} pp"  # NaN: a group is empty


def _print_groups(rows) -> None:
    from jingxin.audience.qini import observed_uplift

    t, y = rows.treated, rows.outcomes
    console.print(f"{rows.experiment}: {int(t.sum())} treated, {int((~t).sum())} held out "
                  f"(control); outcome {rows.outcome!r}; features as of {rows.as_of}",
                  highlight=False, soft_wrap=True)
    for note in rows.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if t.any() and (~t).any():
        console.print(f"observed: treated {y[t].mean():.2%}, control {y[~t].mean():.2%}, "
                      f"uplift {_pp(observed_uplift(t, y))}", highlight=False, soft_wrap=True)


def _print_evaluation(model) -> None:
    e = model.evaluation
    console.print(f"{model.method} ({model.learner}) trained on {e.train_rows} subscribers; "
                  f"test part: {e.test_rows} ({e.test_treated} treated, {e.test_control} "
                  f"control), {e.split}", highlight=False, soft_wrap=True)
    console.print(f"Qini coefficient {e.qini:.3f} (random ordering: 0.000; optimum: 1)",
                  highlight=False, soft_wrap=True)
    console.print(f"AUUC {e.auuc:.4f} (random ordering: {e.auuc_random:.4f})",
                  highlight=False, soft_wrap=True)
    console.print(f"top {e.top_share:.0%} by predicted uplift: uplift {_pp(e.top_uplift)} vs "
                  f"the average {_pp(e.test_uplift)}", highlight=False, soft_wrap=True)
    if not e.qini > 0:
        console.print("[yellow]warning:[/] on the test part the model ranks no better than "
                      "a random ordering: do not target by it", highlight=False, soft_wrap=True)


def _write_qini_chart(rows, training, out: Path, *, campaign: int) -> None:
    from jingxin.audience.qini import qini_chart, qini_curve, write_chart

    test = training.test
    e = training.evaluation
    figure = qini_chart(
        {"uplift model": qini_curve(training.scores[test], rows.treated[test],
                                    rows.outcomes[test])},
        title=f"Qini curve: campaign {campaign}, outcome {rows.outcome}",
        subtitle=f"test part: {e.test_rows} subscribers; Qini coefficient {e.qini:.3f}, "
                 f"AUUC {e.auuc:.4f} (random {e.auuc_random:.4f})")
    write_chart(figure, out)
    console.print(f"Qini curve written to {out}", highlight=False, soft_wrap=True)


def _write_frame(frame, out: Path) -> None:
    """CSV, or Parquet for a .parquet name; written to a temporary file first, so a
    failure leaves no half-written file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(out)


@audience_app.command("score-uplift")
def score_uplift(
    model: Path = typer.Argument(..., help="An uplift model (train-uplift prints it)."),
    out: Path = typer.Option(..., "--out", help="Where to write msisdn, subscriber_id, "
                             "uplift (.csv or .parquet), highest uplift first."),
    spec: Path | None = typer.Option(None, "--spec", help="Score only this segment."),
    as_of: str | None = typer.Option(None, "--as-of", help="Feature build (default: the "
                                     "latest)."),
    warehouse: Path | None = WarehouseOpt, spark: bool = SparkOpt,
) -> None:
    """Score the warehouse's subscribers (or a segment) with an uplift model, so a
    campaign can target the persuadable."""
    from jingxin.audience import uplift
    from jingxin.audience.subscriber_rows import feature_rows
    from jingxin.cli.audience import _compile, _date

    trained = uplift.load(model)
    wh = _open(warehouse, spark)
    ids = _compile(spec, wh).ids if spec is not None else None
    rows = feature_rows(wh, ids=ids, as_of=_date(as_of))
    if rows.frame.empty:
        console.print(f"nobody to score in the feature build of {rows.as_of}",
                      highlight=False)
        return
    scored = rows.frame[["msisdn", "subscriber_id"]].assign(
        uplift=trained.predict(rows.features()).round(5))
    scored = scored.sort_values(["uplift", "subscriber_id"], ascending=[False, True])
    _write_frame(scored, out)
    positive = int((scored["uplift"] > 0).sum())
    decile = scored["uplift"].quantile(0.9)
    console.print(f"scored {len(scored)} subscribers (features as of {rows.as_of}) into "
                  f"{out}: {positive} with a positive predicted uplift; top decile from "
                  f"{decile:+.4f}", highlight=False, soft_wrap=True)
