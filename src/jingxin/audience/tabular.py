"""A calibrated binary classifier over a plain table: the engine of the propensity models.

Works on any frame: numeric columns are imputed, text/boolean columns with few distinct
values are one-hot encoded, everything else (ids, free text) is left out and named. The
model is a histogram gradient-boosting classifier calibrated with ``CalibratedClassifierCV``
(isotonic, 3 folds), so scores read as probabilities. The hold-out is time-based when a
time column is given (train on the earlier periods, test on the latest), stratified
otherwise; its ROC AUC and the main features by permutation importance are reported.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jingxin.errors import InputError

TRUE = {"true", "t", "yes", "y", "1", "1.0", "churned"}
FALSE = {"false", "f", "no", "n", "0", "0.0", "retained"}
MAX_CATEGORIES = 50


@dataclass
class Trained:
    """A fitted model and what it was trained on; saved with joblib as one object."""

    model: Any
    label: str
    numeric: list[str]
    categorical: list[str]
    auc: float
    holdout: str
    train_rows: int
    test_rows: int
    importance: list[tuple[str, float]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    trained_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise InputError(f"cannot score: columns missing: {', '.join(missing)}")
        return self.model.predict_proba(_prepare(frame, self))[:, 1]


def labels(values: pd.Series, *, where: str) -> pd.Series:
    """A 0/1 series from booleans, 0/1 numbers or yes/no/true/false text."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("int64")
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(np.nan, index=values.index)
    out[text.isin(TRUE)] = 1
    out[text.isin(FALSE)] = 0
    bad = text[out.isna() & text.notna()]
    if len(bad):
        raise InputError(f"{where}: label value {bad.iloc[0]!r} (row {bad.index[0]}) is not "
                         f"true/false, yes/no or 1/0")
    return out


def infer_columns(frame: pd.DataFrame, *, exclude: set[str]) -> tuple[list[str], list[str],
                                                                        list[str]]:
    """(numeric, categorical, dropped) columns of ``frame``."""
    numeric, categorical, dropped = [], [], []
    for col in frame.columns:
        if col in exclude:
            continue
        s = frame[col]
        if s.isna().all():
            dropped.append(col)  # nothing to learn from an empty column
        elif pd.api.types.is_bool_dtype(s):
            categorical.append(col)
        elif pd.api.types.is_numeric_dtype(s):
            numeric.append(col)
        elif s.nunique(dropna=True) <= MAX_CATEGORIES:
            categorical.append(col)
        else:
            dropped.append(col)
    return numeric, categorical, dropped


def _prepare(frame: pd.DataFrame, spec: Trained | tuple[list[str], list[str]]) -> pd.DataFrame:
    numeric, categorical = ((spec.numeric, spec.categorical) if isinstance(spec, Trained)
                            else spec)
    out = frame[numeric].astype("float64").copy()
    for col in categorical:
        out[col] = frame[col].astype("string").fillna("<missing>").astype(object)
    return out


def _pipeline(numeric: list[str], categorical: list[str], seed: int):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer([
        ("num", SimpleImputer(strategy="median"), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
    ])
    # Early stopping on an internal 10 % split keeps training short on a busy machine.
    gbm = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, early_stopping=True,
                                         random_state=seed)
    return make_pipeline(pre, CalibratedClassifierCV(gbm, method="isotonic", cv=3))


def split(frame: pd.DataFrame, y: pd.Series, *, time_column: str | None,
          seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Boolean train/test masks and a description of the hold-out."""
    if time_column is not None:
        periods = frame[time_column]
        latest = periods.max()
        if periods.nunique() >= 2:
            test = (periods == latest).to_numpy()
            return ~test, test, f"time-based: test = {time_column} {latest}"
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(frame))
    train_idx, _ = train_test_split(idx, test_size=0.25, random_state=seed, stratify=y)
    train = np.zeros(len(frame), bool)
    train[train_idx] = True
    return train, ~train, "stratified 25% hold-out"


def fit(frame: pd.DataFrame, *, label: str, time_column: str | None = None,
        exclude: set[str] | None = None, seed: int = 0, where: str = "<frame>") -> Trained:
    """Train, evaluate on the hold-out and return the model (trained on the train part)."""
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: on a shared, busy machine the gradient-boosting threads spin
    # against each other (measured: 119 s with the default pool, 18 s with one thread).
    with threadpool_limits(1):
        return _fit(frame, label=label, time_column=time_column, exclude=exclude, seed=seed,
                    where=where)


def _fit(frame: pd.DataFrame, *, label: str, time_column: str | None,
         exclude: set[str] | None, seed: int, where: str) -> Trained:
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    if label not in frame.columns:
        raise InputError(f"{where}: no label column {label!r} (columns: "
                         f"{', '.join(map(str, frame.columns))})")
    y = labels(frame[label], where=f"{where}: column {label!r}")
    frame, y = frame[y.notna()], y[y.notna()].astype("int64")
    if y.nunique() < 2 or y.value_counts().min() < 6:
        raise InputError(f"{where}: label {label!r} needs at least 6 rows of each class "
                         f"(got {y.value_counts().to_dict()})")
    numeric, categorical, dropped = infer_columns(
        frame, exclude={label, *(exclude or set()), *([time_column] if time_column else [])})
    if not numeric and not categorical:
        raise InputError(f"{where}: no usable feature columns")
    train, test, holdout = split(frame, y, time_column=time_column, seed=seed)
    x = _prepare(frame, (numeric, categorical))
    model = _pipeline(numeric, categorical, seed).fit(x[train], y[train])
    proba = model.predict_proba(x[test])[:, 1]
    auc = float(roc_auc_score(y[test], proba)) if y[test].nunique() == 2 else float("nan")
    # Importance on at most 2,000 hold-out rows: the ranking is stable long before that.
    sample = np.flatnonzero(test)[:2000]
    imp = permutation_importance(model, x.iloc[sample], y.iloc[sample], scoring="roc_auc",
                                 n_repeats=3, random_state=seed)
    ranked = sorted(zip(x.columns, imp.importances_mean, strict=True), key=lambda p: -p[1])
    return Trained(model, label, numeric, categorical, auc, holdout, int(train.sum()),
                   int(test.sum()), [(c, round(float(v), 4)) for c, v in ranked[:10]], dropped)


def save(trained: Trained, path: Path) -> Path:
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    joblib.dump(trained, tmp)
    tmp.replace(path)
    return path


def load(path: Path) -> Trained:
    import joblib

    if not path.exists():
        raise InputError(f"{path}: no such model; train one first")
    return joblib.load(path)
