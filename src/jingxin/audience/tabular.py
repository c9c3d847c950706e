"""A calibrated binary classifier over a plain table: the engine of the propensity models.

Works on any frame: numeric columns are imputed, text/boolean columns with few distinct
values are one-hot encoded, everything else (ids, free text) is left out and named. The
model is a histogram gradient-boosting classifier calibrated with ``CalibratedClassifierCV``
(isotonic, 3 folds), so scores read as probabilities. The hold-out is time-based when a
time column is given (train on the earlier periods, test on the latest), stratified
otherwise; its ROC AUC and the main features by permutation importance are reported.

What makes the result one to trust lives in :mod:`jingxin.audience.trust` (the leakage
guard, cross-validation, per-subscriber reasons); :class:`Setup` says how to train (which
label value means churned, which rows to leave out, hold-out size, folds, refit).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jingxin.audience import trust
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
    # Added later: plain defaults (not factories) so models saved before still load.
    cv_auc: tuple[float, float] | None = None  # mean, std over `folds` folds
    folds: int = 0
    refit: bool = False  # the model was refit on every row after evaluation
    reference: trust.Reference | None = None  # the typical training row, for reasons
    warnings: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()  # rows not trained on, and why
    positive: str | None = None  # the label value that meant churned, when given

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(_prepare(self._aligned(frame), self))[:, 1]

    def ensure_reference(self, frame: pd.DataFrame) -> trust.Reference:
        """The typical training row; a model saved without one (made by hand, or before
        references were kept) takes it from ``frame``."""
        if self.reference is None:
            self.reference = trust.Reference.of(_prepare(self._aligned(frame), self),
                                                 numeric=self.numeric,
                                                 categorical=self.categorical)
        return self.reference

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per row and feature, how much it moved the score (see :mod:`trust`)."""
        ref = self.ensure_reference(frame)
        return trust.contributions(self.model, _prepare(self._aligned(frame), self),
                                   numeric=self.numeric, categorical=self.categorical,
                                   reference=ref)

    def reasons(self, frame: pd.DataFrame, top: int = 3) -> pd.Series:
        """Per row, its ``top`` largest contributions as text:
        ``"Service calls high (+0.31); Intl plan yes (+0.12)"``."""
        ref = self.ensure_reference(frame)
        x = _prepare(self._aligned(frame), self)
        centre = ref.mean if self.unit == "log-odds" else ref.median
        words = trust.describe(x, numeric=self.numeric, categorical=self.categorical,
                               centre=centre)
        contrib = trust.contributions(self.model, x, numeric=self.numeric,
                                      categorical=self.categorical, reference=ref)
        return trust.reasons(contrib, words, top=top)

    @property
    def unit(self) -> str:
        """What a contribution is measured in: "score" points or "log-odds"."""
        return trust.unit(self.model, numeric=self.numeric, categorical=self.categorical)

    def _aligned(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with each feature column found by its name, spaces trimmed."""
        rename, missing = {}, []
        for col in self.features:
            if col in frame.columns:
                continue
            hits = [c for c in frame.columns if str(c).strip() == str(col).strip()]
            if len(hits) == 1:
                rename[hits[0]] = col
            else:
                missing.append(str(col))
        if missing:
            raise InputError(f"cannot score: columns missing: {', '.join(missing)}")
        return frame.rename(columns=rename) if rename else frame


@dataclass(frozen=True)
class Setup:
    """How to train: the label and its churned value, which rows and columns to use, and
    how to evaluate. Column names are matched after trimming spaces."""

    label: str
    positive: str | None = None  # label value meaning churned; None: yes/no, 1/0, ...
    drop_rows: tuple[tuple[str, str], ...] = ()  # (column, value): rows to leave out
    time_column: str | None = None
    exclude: frozenset[str] = frozenset()  # identifiers, not features
    allow_leaky: frozenset[str] = frozenset()
    test_size: float = 0.25
    folds: int = 0  # 0: no cross-validation
    refit: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.test_size < 1:
            raise InputError(f"--test-size {self.test_size}: must be between 0 and 1 "
                             "(0.25 keeps a quarter of the rows for the hold-out)")
        if self.folds == 1 or self.folds < 0:
            raise InputError(f"--folds {self.folds}: give 2 or more (or 0 for none)")


@dataclass(frozen=True)
class Training:
    """A trained model and the rows of the frame behind it."""

    trained: Trained
    rows: pd.Index  # the rows trained and evaluated on (labelled, not left out)
    held_out: pd.Index  # the hold-out rows among them


def labels(values: pd.Series, *, where: str, positive: str | None = None) -> pd.Series:
    """A 0/1 series (NaN where the label is missing): 1 where the value is ``positive``
    (trimmed, any case), else from booleans, 0/1 numbers or yes/no/true/false text."""
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(np.nan, index=values.index)
    if positive is not None:
        hit = _equals(values, positive)
        if not hit.any():
            raise InputError(f"{where}: no row has the --positive value {positive!r} "
                             f"(values: {trust.values_seen(values)})")
        out[text.notna()] = hit[text.notna()].astype(float)
        return out
    if pd.api.types.is_bool_dtype(values):
        return values.astype("int64")
    out[text.isin(TRUE)] = 1
    out[text.isin(FALSE)] = 0
    bad = text[out.isna() & text.notna()]
    if len(bad) and text.nunique() > 2:
        raise InputError(f"{where}: the label has {text.nunique()} values "
                         f"({trust.values_seen(values)}); say which one means churned with "
                         f"--positive VALUE and leave rows out with --drop-rows COLUMN=VALUE")
    if len(bad):
        first = str(values[bad.index[0]]).strip()
        raise InputError(f"{where}: label value {first!r} ({_row(bad.index[0])}) is not "
                         f"true/false, yes/no or 1/0 (values: {trust.values_seen(values)}); "
                         f"say which value means churned with --positive VALUE")
    return out


def _row(index: Hashable) -> str:
    """A row as a user finds it: a frame read from a CSV keeps its 0-based positions as
    the index, so data row 1 is the first row under the header."""
    return f"data row {index + 1}" if isinstance(index, (int, np.integer)) else f"row {index!r}"


def _equals(values: pd.Series, wanted: str) -> pd.Series:
    """Where ``values`` is ``wanted``: as numbers in a numeric column (a column of 0/1/2
    with a gap reads as 2.0), else as text trimmed, any case. Never NA."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        try:
            return (values == float(wanted)).fillna(False).astype(bool)
        except ValueError:
            pass
    text = values.astype("string").str.strip().str.lower()
    return (text == wanted.strip().lower()).fillna(False).astype(bool)


def _rows(frame: pd.DataFrame, setup: Setup, *, label: Hashable,
          where: str) -> tuple[pd.DataFrame, pd.Series, tuple[str, ...]]:
    """The rows to learn from, their 0/1 labels, and notes on the rows left out."""
    keep = pd.Series(True, index=frame.index)
    notes = []
    for name, value in setup.drop_rows:
        col = trust.column(frame.columns, name, what="--drop-rows", where=where)
        hit = _equals(frame[col], value)
        if not hit.any():
            raise InputError(f"{where}: --drop-rows {name}={value}: no row has {value!r} in "
                             f"{str(col)!r} (values: {trust.values_seen(frame[col])})")
        notes.append(f"{int((hit & keep).sum())} rows with {str(col).strip()} = {value} "
                     f"(--drop-rows)")
        keep &= ~hit
    y = labels(frame.loc[keep, label], where=f"{where}: column {str(label)!r}",
               positive=setup.positive)
    if y.isna().any():
        notes.append(f"{int(y.isna().sum())} rows without a label")
    y = y[y.notna()]
    return frame.loc[y.index], y.astype("int64"), tuple(notes)


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


def split(frame: pd.DataFrame, y: pd.Series, *, time_column: Hashable | None, seed: int,
          test_size: float = 0.25, where: str = "<frame>") -> tuple[np.ndarray, np.ndarray,
                                                                  str]:
    """Boolean train/test masks and a description of the hold-out."""
    if time_column is not None:
        periods = frame[time_column]
        latest = periods.max()
        if periods.nunique() >= 2:
            test = (periods == latest).to_numpy()
            return ~test, test, f"time-based: test = {time_column} {latest}"
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(frame))
    try:
        train_idx, _ = train_test_split(idx, test_size=test_size, random_state=seed,
                                        stratify=y)
    except ValueError as exc:  # a hold-out too small to hold both classes
        raise InputError(f"{where}: --test-size {test_size}: {exc}") from exc
    train = np.zeros(len(frame), bool)
    train[train_idx] = True
    return train, ~train, f"stratified {test_size:.0%} hold-out, seed {seed}"


def fit(frame: pd.DataFrame, *, label: str, time_column: str | None = None,
        exclude: set[str] | None = None, seed: int = 0, where: str = "<frame>") -> Trained:
    """Train, evaluate on the hold-out and return the model (trained on the train part)."""
    setup = Setup(label=label, time_column=time_column, exclude=frozenset(exclude or ()),
                  seed=seed)
    return train(frame, setup, where=where).trained


def train(frame: pd.DataFrame, setup: Setup, *, where: str = "<frame>") -> Training:
    """Train as ``setup`` says: refuse leaky features, evaluate on the hold-out (and by
    cross-validation when asked), refit on every row when asked."""
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: on a shared, busy machine the gradient-boosting threads spin
    # against each other (measured: 119 s with the default pool, 18 s with one thread).
    with threadpool_limits(1):
        return _train(frame, setup, where=where)


def _train(frame: pd.DataFrame, setup: Setup, *, where: str) -> Training:
    from sklearn.metrics import roc_auc_score

    def find(name: str, what: str) -> Hashable:
        return trust.column(frame.columns, name, what=what, where=where)

    label = find(setup.label, "label")
    time_column = find(setup.time_column, "time") if setup.time_column else None
    exclude = {find(c, "--id-column") for c in setup.exclude}
    allow = {find(c, "--allow-leaky") for c in setup.allow_leaky}
    rows, y, left_out = _rows(frame, setup, label=label, where=where)
    if y.nunique() < 2 or y.value_counts().min() < 6:
        raise InputError(f"{where}: label {str(label)!r} needs at least 6 rows of each class "
                         f"(got {y.value_counts().to_dict()})")
    numeric, categorical, dropped = infer_columns(
        rows, exclude={label, *exclude, *([time_column] if time_column else [])})
    if not numeric and not categorical:
        raise InputError(f"{where}: no usable feature columns")
    fit_rows, test, holdout = split(rows, y, time_column=time_column, seed=setup.seed,
                                    test_size=setup.test_size, where=where)
    x = _prepare(rows, (numeric, categorical))
    warnings = trust.leakage(x[fit_rows], y[fit_rows], numeric=numeric,
                             categorical=categorical, label=str(label), allow=allow,
                             where=where)
    model = _pipeline(numeric, categorical, setup.seed).fit(x[fit_rows], y[fit_rows])
    proba = model.predict_proba(x[test])[:, 1]
    auc = float(roc_auc_score(y[test], proba)) if y[test].nunique() == 2 else float("nan")
    importance = _importance(model, x[test], y[test], seed=setup.seed)
    cv_auc = (trust.cross_validate(lambda: _pipeline(numeric, categorical, setup.seed), x, y,
                                   folds=setup.folds, seed=setup.seed, where=where)
              if setup.folds else None)
    if setup.refit:
        model = _pipeline(numeric, categorical, setup.seed).fit(x, y)
    reference = trust.Reference.of(x if setup.refit else x[fit_rows], numeric=numeric,
                                   categorical=categorical)
    trained = Trained(model, label, numeric, categorical, auc, holdout, int(fit_rows.sum()),
                      int(test.sum()), importance, dropped, cv_auc=cv_auc,
                      folds=setup.folds, refit=setup.refit, reference=reference,
                      warnings=tuple(warnings), left_out=left_out, positive=setup.positive)
    return Training(trained, rows=rows.index, held_out=rows.index[test])


def _importance(model: Any, x: pd.DataFrame, y: pd.Series, *,
                seed: int) -> list[tuple[str, float]]:
    """The ten features whose shuffling costs the most hold-out AUC."""
    from sklearn.inspection import permutation_importance

    # At most 2,000 hold-out rows: the ranking is stable long before that.
    x, y = x.iloc[:2000], y.iloc[:2000]
    if y.nunique() < 2:  # AUC needs both classes
        return []
    imp = permutation_importance(model, x, y, scoring="roc_auc", n_repeats=3,
                                 random_state=seed)
    ranked = sorted(zip(x.columns, imp.importances_mean, strict=True), key=lambda p: -p[1])
    return [(c, round(float(v), 4)) for c, v in ranked[:10]]


def save(trained: Trained, path: Path) -> Path:
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    joblib.dump(trained, tmp)
    tmp.replace(path)
    return path


def load(path: Path) -> Trained:
    return load_model(path, Trained, missing="train one first", what="a jingxin model")


def load_model(path: Path, kind: type[Any], *, missing: str, what: str) -> Any:
    """The model saved at ``path`` (by :func:`save`), which must be a ``kind``; a missing
    file, one that does not unpickle, or another kind of object is an InputError naming
    the file (``missing``: what to do; ``what``: the kind, as the user knows it)."""
    import joblib

    if not path.exists():
        raise InputError(f"{path}: no such model; {missing}")
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling fails in many ways; to a user all mean the same
        raise InputError(f"{path}: cannot load the model: {exc}") from exc
    if not isinstance(model, kind):
        raise InputError(f"{path}: not {what} (a {type(model).__name__})")
    return model
