"""What makes a trained churn model one a user can trust: the checks and explanations
around :func:`jingxin.audience.tabular.fit`.

- :func:`column` finds a column a user named, after trimming spaces (exports often carry
  `` Churn`` or ``Churn ``), and names the closest columns when there is none.
- :func:`leakage` refuses a feature that alone predicts the label almost perfectly (AUC ≥
  0.98): such a column is nearly always recorded after the churn ("Churn Reason", a
  closing date) and would make the model useless on subscribers who have not left yet.
- :func:`cross_validate` gives the AUC's mean and spread over stratified folds, so one
  lucky hold-out is not mistaken for the model's quality.
- :class:`Reference` and :func:`contributions` / :func:`reasons` say, per subscriber, which
  features moved the score and which way.

How a contribution is measured depends on the model:

- a logistic (linear) model on numeric features: coefficient × standardised value,
  i.e. ``coef_j · (x_j − mean_j)`` on the model's input scale, in log-odds;
- any other model (the calibrated gradient-boosting ensemble :func:`tabular.fit` trains):
  the score minus the score with that one feature set to its typical training value (the
  median of a numeric column, the most common value of a categorical one), in score points.
  One prediction over all rows per feature, never one per row. It ignores interactions
  between features, which is what makes it cheap and readable.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from jingxin.errors import InputError

REFUSE_AUC = 0.98
WARN_AUC = 0.9
MISSING = "<missing>"  # how tabular._prepare fills a missing categorical value
NO_REASON = "no single feature moves the score"


def column(columns: Sequence[Hashable], name: str, *, what: str, where: str) -> Hashable:
    """The column of ``columns`` a user called ``name``: the exact name, else the one equal
    to it once both are trimmed of spaces. Raises naming the closest columns otherwise."""
    if name in columns:
        return name
    hits = [c for c in columns if str(c).strip() == name.strip()]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise InputError(f"{where}: {what} column {name!r} matches {len(hits)} columns once "
                         f"spaces are trimmed: {', '.join(repr(str(c)) for c in hits)}")
    lowered = {str(c).strip().lower(): str(c).strip() for c in columns}
    close = difflib.get_close_matches(name.strip().lower(), list(lowered), n=3, cutoff=0.5)
    if close:
        hint = "; closest: " + ", ".join(repr(lowered[c]) for c in close)
    else:
        shown = [str(c) for c in columns]
        hint = f" (columns: {', '.join(shown[:20])}{', ...' if len(shown) > 20 else ''})"
    raise InputError(f"{where}: no {what} column {name!r}{hint}")


def values_seen(values: pd.Series, limit: int = 8) -> str:
    """``Stayed (4720), Churned (1869), Joined (454)``: the most common values of a column."""
    counts = values.astype("string").str.strip().value_counts(dropna=True)
    shown = ", ".join(f"{v} ({n})" for v, n in counts.head(limit).items())
    return shown + (f", ... ({len(counts)} values)" if len(counts) > limit else "")


# ----------------------------------------------------------------------------- leakage


def single_feature_auc(x: pd.DataFrame, y: pd.Series, *, numeric: list[str],
                       categorical: list[str]) -> pd.Series:
    """Per feature, how well it alone ranks churners above the rest: max(AUC, 1 − AUC) of
    the raw values (numeric) or of the per-category churn rate (categorical)."""
    target = y.to_numpy()
    signal = x[numeric].astype("float64").fillna(-np.inf)  # gaps rank lowest: a column
    # filled only for churners leaks through its gaps
    for col in categorical:
        signal[col] = pd.Series(target, index=x.index).groupby(x[col]).transform("mean")
    positive = target == 1
    n1, n0 = int(positive.sum()), int((~positive).sum())
    # roc_auc_score takes one column at a time; the rank-sum (Mann-Whitney U) form below is
    # the same statistic, ties counted half, for every column in one pass.
    ranks = signal.rank(method="average").to_numpy()
    auc = (ranks[positive].sum(axis=0) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return pd.Series(np.maximum(auc, 1 - auc), index=signal.columns)


def leakage(x: pd.DataFrame, y: pd.Series, *, numeric: list[str], categorical: list[str],
            label: str, allow: set[str], where: str) -> list[str]:
    """Warnings about features that predict ``label`` suspiciously well on their own;
    raises InputError for one at AUC ≥ 0.98 unless it is in ``allow``."""
    auc = single_feature_auc(x, y, numeric=numeric, categorical=categorical)
    refused = [c for c in auc.index if auc[c] >= REFUSE_AUC and c not in allow]
    if refused:
        names = ", ".join(f"{c!r} (AUC {auc[c]:.3f})" for c in refused)
        first = refused[0]
        raise InputError(
            f"{where}: {names} alone predict{'s' if len(refused) == 1 else ''} {label!r} on "
            f"the training rows: probably recorded after the churn, so the model would "
            f"learn the answer, not the risk. Leave it out with --id-column {first!r}, or "
            f"keep it anyway with --allow-leaky {first!r}")
    warnings = []
    for col in auc.index[auc >= WARN_AUC]:
        if auc[col] >= REFUSE_AUC:
            warnings.append(f"{col!r} alone predicts {label!r} (AUC {auc[col]:.3f}); kept "
                            f"because of --allow-leaky: the hold-out AUC overstates the model")
        else:
            warnings.append(f"{col!r} alone predicts {label!r} well (AUC {auc[col]:.3f}); "
                            f"check it is known before a subscriber churns")
    return warnings


# ----------------------------------------------------------------------------- evaluation


def cross_validate(make: Callable[[], Any], x: pd.DataFrame, y: pd.Series, *, folds: int,
                   seed: int, where: str) -> tuple[float, float]:
    """Mean and standard deviation of the ROC AUC over ``folds`` stratified folds."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    smallest = int(y.value_counts().min())
    if folds > smallest:
        raise InputError(f"{where}: --folds {folds} needs at least {folds} rows of each "
                         f"class (the smaller class has {smallest})")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(make(), x, y, cv=cv, scoring="roc_auc")
    return float(scores.mean()), float(scores.std())


# ----------------------------------------------------------------------------- reasons


@dataclass(frozen=True)
class Reference:
    """The typical training subscriber, against which a score is explained."""

    median: dict[str, float]
    mean: dict[str, float]
    mode: dict[str, str]

    @classmethod
    def of(cls, x: pd.DataFrame, *, numeric: list[str], categorical: list[str]) -> Reference:
        nums = x[numeric].astype("float64")
        return cls(median={c: float(v) for c, v in nums.median().items()},
                   mean={c: float(v) for c, v in nums.mean().items()},
                   mode={c: str(x[c].mode().iloc[0]) for c in categorical})


def _linear(model: Any, width: int) -> tuple[list[Any], np.ndarray] | None:
    """(transforms before the last step, coefficients) of a linear model with one
    coefficient per feature; None for any other model."""
    steps = [s for _, s in model.steps] if hasattr(model, "steps") else [model]
    coef = getattr(steps[-1], "coef_", None)
    if coef is None or np.shape(coef) != (1, width):
        return None
    return steps[:-1], np.asarray(coef)[0]


def unit(model: Any, *, numeric: list[str], categorical: list[str]) -> str:
    """What a contribution of ``model`` is measured in."""
    linear = not categorical and _linear(model, len(numeric)) is not None
    return "log-odds" if linear else "score"


def contributions(model: Any, x: pd.DataFrame, *, numeric: list[str],
                  categorical: list[str], reference: Reference) -> pd.DataFrame:
    """Per row and feature, how much the feature moved the score (see the module docs)."""
    linear = None if categorical else _linear(model, len(numeric))
    if linear is not None:
        transforms, coef = linear
        # DataFrames, not arrays: a step fitted on named columns warns on an array
        z = x[numeric].astype("float64")
        centre = pd.DataFrame([[reference.mean[c] for c in numeric]], columns=numeric)
        for step in transforms:
            z, centre = step.transform(z), step.transform(centre)
        shift = np.asarray(z, dtype="float64") - np.asarray(centre, dtype="float64")
        return pd.DataFrame(np.nan_to_num(coef * shift), index=x.index, columns=numeric)
    base = model.predict_proba(x)[:, 1]
    out = np.empty((len(x), len(numeric) + len(categorical)))
    moved = x.copy()
    typical = {**reference.median, **reference.mode}
    for j, col in enumerate(numeric + categorical):
        moved[col] = typical[col]
        out[:, j] = base - model.predict_proba(moved)[:, 1]
        moved[col] = x[col]
    return pd.DataFrame(out, index=x.index, columns=numeric + categorical)


def describe(x: pd.DataFrame, *, numeric: list[str], categorical: list[str],
             centre: dict[str, float]) -> pd.DataFrame:
    """Per row and feature, a word for its value: low / high / typical against ``centre``
    for a numeric feature, the value itself for a categorical one; "missing" for gaps."""
    words = {}
    for col in numeric:
        v = x[col].to_numpy("float64")
        words[col] = np.where(np.isnan(v), "missing", np.where(
            v < centre[col], "low", np.where(v > centre[col], "high", "typical")))
    for col in categorical:
        text = x[col].astype(str).to_numpy(object)
        words[col] = np.where(text == MISSING, "missing", text)
    return pd.DataFrame(words, index=x.index)


def reasons(contrib: pd.DataFrame, words: pd.DataFrame, *, top: int) -> pd.Series:
    """``"tenure low (+0.42); contract month-to-month (+0.31)"``: the ``top`` largest
    contributions of each row, largest first; contributions under 0.005 are left out, and
    a row with none left says so (its score comes from features acting together)."""
    values = contrib.to_numpy()
    rows = np.arange(len(values))
    names = np.asarray(contrib.columns.astype(str).str.strip(), dtype=object)
    text = words[contrib.columns].to_numpy(object)
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :top]
    out = np.full(len(values), "", dtype=object)
    for k in range(order.shape[1]):  # a loop over ranks, not rows
        j = order[:, k]
        v = values[rows, j]
        part = names[j] + " " + text[rows, j] + " (" + np.char.mod("%+.2f", v).astype(
            object) + ")"
        part = np.where(np.abs(v) >= 0.005, part, "")
        out = np.where(part == "", out, np.where(out == "", part, out + "; " + part))
    out = np.where(out == "", NO_REASON, out)
    return pd.Series(out, index=contrib.index, dtype=object)
