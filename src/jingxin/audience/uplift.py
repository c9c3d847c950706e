"""Uplift models: who is *persuadable*, i.e. acts because of the message, as opposed to
those who would act anyway (sure things), never (lost causes) or less (do-not-disturbs).

Learnt from a campaign's treated subscribers (sent the message) and its hold-out (not
sent), both drawn at random from the same audience, so their difference is the message's
effect. Two methods (scikit-learn):

* ``two-model``: one classifier on the treated, one on the control; the uplift is
  ``P(outcome | x, treated) − P(outcome | x, control)``.
* ``transformed`` (transformed outcome): one regression on
  ``Z = Y · (T / p − (1 − T) / (1 − p))`` with ``p`` the treated share of the training
  rows. As treatment was assigned at random, ``E[Z | x]`` is the uplift at ``x``.

Each with a learner: ``gbm`` (histogram gradient boosting, shallow and regularised: the
effect is a small difference between noisy rates) or ``linear`` (logistic regression for
two-model, ridge regression for transformed; features standardised).

:func:`train_uplift` checks both groups are large enough, splits the rows into train and
test (stratified on group × outcome, by seed), fits on the train part and measures the
ranking on the test part (:mod:`jingxin.audience.qini`) against a random ordering.
The curve functions are re-exported here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jingxin.audience import tabular
from jingxin.audience.qini import (
    as_bools,
    auuc,
    observed_uplift,
    qini_coefficient,
    qini_curve,
    random_auuc,
    top_uplift,
    uplift_curve,
)
from jingxin.errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import ArrayLike

__all__ = ["LEARNERS", "METHODS", "MIN_GROUP", "Evaluation", "Training", "UpliftModel",
           "auuc", "check_groups", "evaluate", "fit_uplift", "load", "observed_uplift",
           "qini_coefficient", "qini_curve", "random_auuc", "save", "top_uplift",
           "train_uplift", "uplift_curve"]

METHODS = ("two-model", "transformed")
LEARNERS = ("gbm", "linear")
MIN_GROUP = 50  # subscribers in each of the treated and control groups


@dataclass(frozen=True)
class Evaluation:
    """The ranking on the test part, against a random ordering (whose Qini coefficient
    is 0 and whose AUUC is half the observed uplift)."""

    split: str
    train_rows: int
    test_rows: int
    test_treated: int
    test_control: int
    test_uplift: float  # observed on the test part: treated rate − control rate
    qini: float  # Radcliffe's Q on the test part
    auuc: float
    auuc_random: float
    top_share: float
    top_uplift: float  # observed among the test part's top share by predicted uplift


@dataclass
class UpliftModel:
    """A fitted uplift model; saved with joblib as one object."""

    method: str
    learner: str
    numeric: list[str]
    categorical: list[str]
    estimators: tuple[Any, ...]  # (treated, control) classifiers, or (regressor,)
    treated_share: float
    dropped: list[str] = field(default_factory=list)
    outcome: str | None = None
    source: str | None = None  # e.g. "campaign:12"
    features_as_of: str | None = None
    evaluation: Evaluation | None = None
    trained_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The predicted uplift of each row: a difference of probabilities."""
        from threadpoolctl import threadpool_limits

        x = tabular._prepare(self._aligned(_frame(X)), (self.numeric, self.categorical))
        with threadpool_limits(1):
            if self.method == "two-model":
                treated, control = self.estimators
                return treated.predict_proba(x)[:, 1] - control.predict_proba(x)[:, 1]
            return self.estimators[0].predict(x)

    def _aligned(self, frame: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise InputError(f"cannot score uplift: columns missing: {', '.join(missing)}")
        return frame


def _frame(X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise InputError(f"features: expected a table (2 dimensions), got {array.ndim}")
    return pd.DataFrame(array, columns=[f"x{j}" for j in range(array.shape[1])])


def _preprocess(numeric: list[str], categorical: list[str], *, scale: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = SimpleImputer(strategy="median")
    if scale:
        num = make_pipeline(num, StandardScaler())
    return ColumnTransformer([
        ("num", num, numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
    ])


def _classifier(learner: str, numeric: list[str], categorical: list[str], seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if learner == "linear":
        model = LogisticRegression(C=1.0, max_iter=1000)
    else:
        model = HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.05, max_depth=3, min_samples_leaf=20,
            l2_regularization=1.0, random_state=seed)
    return make_pipeline(_preprocess(numeric, categorical, scale=learner == "linear"), model)


def _regressor(learner: str, numeric: list[str], categorical: list[str], seed: int):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    if learner == "linear":
        model = Ridge(alpha=1.0)
    else:
        # Z is ±1/p or 0: very noisy; large leaves average enough of it to see the effect
        model = HistGradientBoostingRegressor(
            max_iter=100, learning_rate=0.05, max_depth=3, min_samples_leaf=60,
            l2_regularization=1.0, random_state=seed)
    return make_pipeline(_preprocess(numeric, categorical, scale=learner == "linear"), model)


def fit_uplift(X: pd.DataFrame | np.ndarray, treated: ArrayLike, outcome: ArrayLike, *,
               method: str = "two-model", learner: str = "gbm", seed: int = 0,
               where: str = "uplift training rows") -> UpliftModel:
    """Fit an uplift model on every row given (see the module docs for the methods)."""
    from threadpoolctl import threadpool_limits

    if method not in METHODS:
        raise InputError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if learner not in LEARNERS:
        raise InputError(f"--learner {learner!r}: choose one of {', '.join(LEARNERS)}")
    frame = _frame(X)
    t = as_bools(treated, what=f"{where}: treated")
    y = as_bools(outcome, what=f"{where}: outcome")
    if not len(frame) == len(t) == len(y):
        raise InputError(f"{where}: features, treated and outcome differ in length "
                         f"({len(frame)}, {len(t)}, {len(y)})")
    for name, rows in (("treated", t), ("control", ~t)):
        if method == "two-model" and len(set(y[rows])) < 2:
            raise InputError(f"{where}: the {name} group ({int(rows.sum())} rows) needs "
                             "subscribers both with and without the outcome")
        if not rows.any():
            raise InputError(f"{where}: no {name} rows")
    numeric, categorical, dropped = tabular.infer_columns(frame, exclude=set())
    if not numeric and not categorical:
        raise InputError(f"{where}: no usable feature columns")
    x = tabular._prepare(frame, (numeric, categorical))
    share = float(t.mean())
    # One OpenMP thread, as tabular.train does: on a shared machine it is the faster.
    with threadpool_limits(1):
        if method == "two-model":
            estimators = tuple(
                _classifier(learner, numeric, categorical, seed).fit(x[rows], y[rows])
                for rows in (t, ~t))
        else:
            z = y * (t / share - (~t) / (1 - share))
            estimators = (_regressor(learner, numeric, categorical, seed).fit(x, z),)
    return UpliftModel(method, learner, numeric, categorical, estimators, share,
                       dropped=dropped)


def check_groups(treated: ArrayLike, outcome: ArrayLike, *, outcome_name: str = "outcome",
                 minimum: int = MIN_GROUP, where: str = "uplift training rows") -> None:
    """Refuse data an uplift model cannot learn from: no hold-out, a group smaller than
    ``minimum``, or a group where nobody (or everybody) has the outcome."""
    t = as_bools(treated, what=f"{where}: treated")
    y = as_bools(outcome, what=f"{where}: outcome")
    if not (~t).any():
        raise InputError(f"{where}: no hold-out: all {len(t)} subscribers were treated; an "
                         "uplift model compares the treated with held-out subscribers")
    for name, rows in (("treated", t), ("hold-out (control)", ~t)):
        size = int(rows.sum())
        if size < minimum:
            raise InputError(f"{where}: the {name} group has {size} subscribers; an uplift "
                             f"model needs at least {minimum} in each group")
        positives = int(y[rows].sum())
        if positives == 0 or positives == size:
            none = "no" if positives == 0 else "every"
            hint = ""
            if not positives and name == "treated":
                hint = " (outcomes come from the event log: run `jingxin events collect`)"
            elif not positives:
                hint = (" (held-out subscribers get no message, so only an outcome they can "
                        "reach without one, such as ordered, can be compared)")
            raise InputError(f"{where}: {none} subscriber of the {name} group ({size}) has "
                             f"{outcome_name!r}: nothing to compare{hint}")


@dataclass(frozen=True)
class Training:
    """A model fitted on the train part, its evaluation, and every row's score."""

    model: UpliftModel
    evaluation: Evaluation
    test: np.ndarray  # bool per row: in the test part
    scores: np.ndarray  # predicted uplift of every row


def split(treated: np.ndarray, outcome: np.ndarray, *, test_size: float, seed: int,
          where: str) -> np.ndarray:
    """A boolean test mask, stratified on group × outcome."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise InputError(f"--test-size {test_size}: must be between 0 and 1 (0.3 keeps "
                         "30 % of the subscribers to measure the model on)")
    strata = 2 * treated.astype(int) + outcome.astype(int)
    for value, (group, has) in enumerate((("hold-out (control)", "without"),
                                          ("hold-out (control)", "with"),
                                          ("treated", "without"), ("treated", "with"))):
        size = int((strata == value).sum())
        if size < 2:
            raise InputError(f"{where}: the {group} group has {size} subscriber"
                             f"{'' if size == 1 else 's'} {has} the outcome: too few to "
                             "put some in both the train and the test part")
    try:
        _, test_idx = train_test_split(np.arange(len(treated)), test_size=test_size,
                                       random_state=seed, stratify=strata)
    except ValueError as exc:  # a stratum too small to be in both parts
        raise InputError(f"{where}: --test-size {test_size}: {exc}") from exc
    test = np.zeros(len(treated), bool)
    test[test_idx] = True
    return test


def evaluate(scores: ArrayLike, treated: ArrayLike, outcome: ArrayLike, *, split: str,
             train_rows: int, top_share: float = 0.1) -> Evaluation:
    """How ``scores`` rank the persuadable among these (test) subscribers."""
    t = as_bools(treated, what="treated")
    y = as_bools(outcome, what="outcome")
    return Evaluation(
        split=split, train_rows=train_rows, test_rows=len(t),
        test_treated=int(t.sum()), test_control=int((~t).sum()),
        test_uplift=observed_uplift(t, y), qini=qini_coefficient(scores, t, y),
        auuc=auuc(scores, t, y), auuc_random=random_auuc(t, y), top_share=top_share,
        top_uplift=top_uplift(scores, t, y, share=top_share))


def train_uplift(X: pd.DataFrame | np.ndarray, treated: ArrayLike, outcome: ArrayLike, *,
                 method: str = "two-model", learner: str = "gbm", test_size: float = 0.3,
                 seed: int = 0, outcome_name: str = "outcome", minimum: int = MIN_GROUP,
                 where: str = "uplift training rows") -> Training:
    """Check the groups, fit on the train part, evaluate on the test part."""
    frame = _frame(X).reset_index(drop=True)
    t = as_bools(treated, what=f"{where}: treated")
    y = as_bools(outcome, what=f"{where}: outcome")
    check_groups(t, y, outcome_name=outcome_name, minimum=minimum, where=where)
    test = split(t, y, test_size=test_size, seed=seed, where=where)
    model = fit_uplift(frame[~test], t[~test], y[~test], method=method, learner=learner,
                       seed=seed, where=f"{where} (train part)")
    model.outcome = outcome_name
    scores = model.predict(frame)
    model.evaluation = evaluate(
        scores[test], t[test], y[test], train_rows=int((~test).sum()),
        split=f"stratified {test_size:.0%} test part, seed {seed}")
    return Training(model=model, evaluation=model.evaluation, test=test, scores=scores)


def save(model: UpliftModel, path: Path) -> Path:
    """Write the model with joblib (to a temporary file first, then renamed), as the churn
    models are written."""
    from jingxin.audience import tabular

    return tabular.save(model, path)  # type: ignore[arg-type]


def load(path: Path) -> UpliftModel:
    from jingxin.audience.tabular import load_model

    return load_model(path, UpliftModel, missing="train one with `jingxin audience "
                      "train-uplift`", what="a jingxin uplift model")  # fmt: skip
