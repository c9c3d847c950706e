"""Models a user can trust: label values, trimmed column names, the leakage guard,
cross-validation, refit, and per-subscriber reasons (tabular + trust)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from jingxin.audience import tabular, trust
from jingxin.errors import InputError


def status_table(n: int = 300, seed: int = 2) -> pd.DataFrame:
    """An operator export in the style of public telecom churn tables: a status column
    (Churned / Stayed / Joined), a reason filled only for churners, headers with stray
    spaces. Churn follows short tenure and month-to-month contracts."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    contract = rng.choice(["Month-to-Month", "One Year", "Two Year"], n, p=[0.5, 0.25, 0.25])
    charge = rng.normal(65, 25, n).round(2)
    risk = -0.06 * (tenure - 30) + 1.8 * (contract == "Month-to-Month") - 1.2
    churned = rng.random(n) < 1 / (1 + np.exp(-risk))
    status = np.where(churned, "Churned", np.where(tenure <= 3, "Joined", "Stayed"))
    reason = np.where(churned, rng.choice(["Competitor", "Price", "Attitude"], n), None)
    return pd.DataFrame({"Customer ID": [f"C{i:05d}" for i in range(n)],
                         " Tenure in Months": tenure, "Contract ": contract,
                         "Monthly Charge": charge, "Churn Reason": reason,
                         " Customer Status ": status})


SETUP = tabular.Setup(label="Customer Status", positive="Churned",
                      drop_rows=(("Customer Status", "Joined"),),
                      exclude=frozenset({"Customer ID", "Churn Reason"}), seed=1)


@pytest.fixture(scope="module")
def evaluated() -> tabular.Training:
    """One training with cross-validation and a refit, shared by the tests that read it."""
    setup = replace(SETUP, folds=3, refit=True, test_size=0.3)
    return tabular.train(status_table(), setup, where="status.csv")


# ----------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("values", "positive", "expected"),
    [
        (["Churned", "Stayed", " churned ", "Joined"], "Churned", [1, 0, 1, 0]),
        (["yes", "no", "Yes", None], None, [1, 0, 1, np.nan]),
        (["1", "0", "0", "1"], None, [1, 0, 0, 1]),
        ([True, False, True, False], None, [1, 0, 1, 0]),
        ([1, 2, 2, None], "2", [0, 1, 1, np.nan]),
    ],
)
def test_labels(values, positive, expected):
    got = tabular.labels(pd.Series(values), where="t.csv", positive=positive)
    np.testing.assert_array_equal(got.to_numpy(dtype=float), np.array(expected, dtype=float))


@pytest.mark.parametrize(
    ("values", "positive", "message"),
    [
        (["Churned", "Stayed", "Joined", "Stayed"], None,
         (r"3 values \(Stayed \(2\), Churned \(1\), Joined \(1\)\); say which one means "
          r"churned with --positive VALUE and leave rows out with --drop-rows")),
        (["Maybe", "no", "no"], None, r"label value 'Maybe' .* with --positive VALUE"),
        (["Churned", "Stayed"], "Left", (r"no row has the --positive value 'Left' "
                                          r"\(values: Churned \(1\), Stayed \(1\)\)")),
    ],
)
def test_label_errors_name_the_values_and_the_way_on(values, positive, message):
    with pytest.raises(InputError, match=message):
        tabular.labels(pd.Series(values), where="t.csv", positive=positive)


# ----------------------------------------------------------------------------- columns


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Churn", " Churn"), (" Churn", " Churn"), ("Tenure", "Tenure "), ("Plan", "Plan")],
)
def test_columns_match_after_trimming_spaces(name, expected):
    assert trust.column([" Churn", "Tenure ", "Plan"], name, what="label",
                        where="t.csv") == expected


@pytest.mark.parametrize(
    ("columns", "name", "message"),
    [
        ([" Churn", "Tenure"], "Churned", r"t.csv: no label column 'Churned'; closest: 'Churn'"),
        (["a", "b"], "zzz", r"no label column 'zzz' \(columns: a, b\)"),
        (["Churn", "Churn "], " Churn", r"matches 2 columns once spaces are trimmed"),
    ],
)
def test_column_errors_name_the_closest(columns, name, message):
    with pytest.raises(InputError, match=message):
        trust.column(columns, name, what="label", where="t.csv")


def test_a_model_scores_a_frame_whose_headers_differ_in_spaces(evaluated):
    frame = status_table(20, seed=5)
    respaced = frame.rename(columns=lambda c: c.strip())
    np.testing.assert_allclose(evaluated.trained.score(respaced),
                               evaluated.trained.score(frame))


# ----------------------------------------------------------------------------- leakage


def test_single_feature_auc():
    # Given a label, a copy of it, its mirror, a column filled only for churners and noise
    rng = np.random.default_rng(0)
    y = pd.Series(rng.integers(0, 2, 400))
    x = pd.DataFrame({"copy": y.astype(float), "mirror": -y.astype(float),
                      "gaps": np.where(y == 1, rng.normal(size=400), np.nan),
                      "noise": rng.normal(size=400),
                      "reason": np.where(y == 1, rng.choice(["Price", "Rival"], 400),
                                         trust.MISSING)})
    auc = trust.single_feature_auc(x, y, numeric=["copy", "mirror", "gaps", "noise"],
                                   categorical=["reason"])
    # Then the leaks score 1 whichever way they point, the noise about 0.5
    assert auc[["copy", "mirror", "gaps", "reason"]].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert 0.5 <= auc["noise"] < 0.6
    from sklearn.metrics import roc_auc_score  # the same statistic as sklearn's

    assert auc["noise"] == pytest.approx(max(roc_auc_score(y, x["noise"]),
                                             1 - roc_auc_score(y, x["noise"])))


def test_a_column_equal_to_the_label_is_refused_by_name():
    frame = status_table().assign(**{"Status copy": lambda f: f[" Customer Status "]})
    with pytest.raises(InputError, match=r"status.csv: 'Status copy' \(AUC 1.000\) alone "
                       r"predicts ' Customer Status ' .* --id-column 'Status copy', or keep "
                       r"it anyway with --allow-leaky 'Status copy'"):
        tabular.train(frame, SETUP, where="status.csv")


def test_a_reason_filled_only_for_churners_is_refused_then_allowed_with_a_warning():
    setup = replace(SETUP, exclude=frozenset({"Customer ID"}))
    with pytest.raises(InputError, match=r"'Churn Reason' \(AUC 1.000\) alone predicts"):
        tabular.train(status_table(), setup, where="status.csv")
    allowed = replace(setup, allow_leaky=frozenset({"Churn Reason "}))
    trained = tabular.train(status_table(), allowed, where="status.csv").trained
    assert "Churn Reason" in trained.categorical
    assert any("'Churn Reason' alone predicts" in w and "--allow-leaky" in w
               for w in trained.warnings)


def test_a_strong_but_not_perfect_feature_is_only_warned_about():
    # Given a column that agrees with the label on 94 % of rows
    rng = np.random.default_rng(3)
    y = pd.Series(rng.integers(0, 2, 500))
    x = pd.DataFrame({"hint": np.where(rng.random(500) < 0.06, 1 - y, y).astype(float)})
    warnings = trust.leakage(x, y, numeric=["hint"], categorical=[], label="Churn",
                             allow=set(), where="t.csv")
    assert len(warnings) == 1 and "'hint' alone predicts 'Churn' well (AUC 0.9" in warnings[0]


# ----------------------------------------------------------------------------- evaluation


def test_training_with_status_drop_rows_folds_and_refit(evaluated):
    trained, table = evaluated.trained, status_table()
    joined = int((table[" Customer Status "] == "Joined").sum())
    # The Joined rows are left out and said so; churned is the positive class
    assert trained.left_out == (f"{joined} rows with Customer Status = Joined (--drop-rows)",)
    assert len(evaluated.rows) == len(table) - joined
    assert trained.positive == "Churned" and trained.label == " Customer Status "
    # A 30 % hold-out drawn from the used rows, with the seed in its description
    assert set(evaluated.held_out) <= set(evaluated.rows)
    assert trained.test_rows == len(evaluated.held_out) == math.ceil(0.3 * len(evaluated.rows))
    assert trained.holdout == "stratified 30% hold-out, seed 1"
    assert trained.auc > 0.7
    mean, std = trained.cv_auc
    assert trained.folds == 3 and 0.6 < mean <= 1 and 0 <= std < 0.2
    assert trained.refit and {"Customer ID", "Churn Reason"}.isdisjoint(trained.features)


def test_refit_model_is_trained_on_every_row(evaluated):
    # The refit model's calibration saw the hold-out too: it is not the evaluated model
    setup = replace(SETUP, test_size=0.3)
    plain = tabular.train(status_table(), setup, where="status.csv").trained
    assert plain.auc == pytest.approx(evaluated.trained.auc)
    assert not plain.refit and plain.cv_auc is None
    frame = status_table()
    assert not np.allclose(plain.score(frame), evaluated.trained.score(frame))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"test_size": 0.0}, r"--test-size 0.0: must be between 0 and 1"),
        ({"test_size": 1.5}, r"--test-size 1.5"),
        ({"folds": 1}, r"--folds 1: give 2 or more"),
    ],
)
def test_setup_refuses_impossible_evaluations(change, message):
    with pytest.raises(InputError, match=message):
        replace(SETUP, **change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": "Customer Statu"},
         r"no label column 'Customer Statu'; closest: 'Customer Status'"),
        ({"positive": None, "drop_rows": ()}, r"3 values \(Stayed"),
        ({"positive": None},
         (r"label value 'Stayed' \(data row 1\) is not true/false, yes/no or 1/0 \(values: "
          r"Stayed \(\d+\), Churned \(\d+\)\); say which value means churned with "
          r"--positive VALUE")),
        ({"drop_rows": (("Customer Status", "Joind"),)},
         (r"--drop-rows Customer Status=Joind: no row has 'Joind' in ' Customer Status ' "
          r"\(values: Stayed")),
        ({"drop_rows": (("Status", "Joined"),)}, r"no --drop-rows column 'Status'"),
        ({"exclude": frozenset({"Customer"})}, r"no --id-column column 'Customer'; closest"),
        ({"time_column": "Month"}, r"no time column 'Month'"),
        ({"folds": 500}, r"--folds 500 needs at least 500 rows of each class"),
    ],
)
def test_training_errors_name_file_column_and_value(change, message):
    with pytest.raises(InputError, match=r"status.csv: " + ".*" + message):
        tabular.train(status_table(), replace(SETUP, **change),
                      where="status.csv")


# ----------------------------------------------------------------------------- reasons


def test_tree_reasons_are_the_score_change_at_the_typical_value(evaluated):
    trained = evaluated.trained
    frame = status_table(40, seed=7)
    contrib = trained.contributions(frame)
    # Then each contribution is the score minus the score with that feature at its median
    moved = frame.assign(**{" Tenure in Months": trained.reference.median[
        " Tenure in Months"]})
    np.testing.assert_allclose(contrib[" Tenure in Months"],
                               trained.score(frame) - trained.score(moved))
    # And a newcomer on a monthly contract reads as such, largest reason first
    risky = frame.assign(**{" Tenure in Months": 1, "Contract ": "Month-to-Month"}).head(1)
    text = trained.reasons(risky).iloc[0]
    assert text.split("; ")[0].startswith(("Tenure in Months low (+",
                                           "Contract Month-to-Month (+"))
    assert trained.unit == "score"


def test_linear_reasons_are_coefficient_times_standardised_value():
    # Given a hand-made logistic model on standardised arpu and calls (as train-churn's
    # callers may save), explained against its own training reference
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(4)
    x = pd.DataFrame({"arpu": rng.normal(50, 20, 200), "calls": rng.poisson(2, 200)})
    y = (x["calls"] - 0.05 * x["arpu"] + rng.normal(size=200) > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    trained = tabular.Trained(model=model, label="churn", numeric=["arpu", "calls"],
                              categorical=[], auc=1.0, holdout="hand-made", train_rows=200,
                              test_rows=0)
    trained.ensure_reference(x)
    # Then a contribution is coef × (x − mean) / std, in log-odds
    coef = model[-1].coef_[0]
    z = (x - x.mean()) / x.std(ddof=0)
    np.testing.assert_allclose(trained.contributions(x).to_numpy(), coef * z.to_numpy())
    assert trained.unit == "log-odds"
    row = pd.DataFrame({"arpu": [10.0], "calls": [9]})
    assert trained.reasons(row, top=1).iloc[0].startswith("calls high (+")


def test_a_model_saved_before_references_explains_against_the_rows_given(tmp_path):
    # Given a model pickled before reasons existed (no reference, no new attributes)
    from sklearn.linear_model import LogisticRegression

    arpu = np.array([5, 8, 10, 12, 15, 18, 40, 45, 50, 60, 70, 80], dtype=float)
    model = LogisticRegression().fit(pd.DataFrame({"arpu": arpu}), arpu < 20)
    old = tabular.Trained(model=model, label="churned_3m", numeric=["arpu"], categorical=[],
                          auc=1.0, holdout="hand-made", train_rows=12, test_rows=0)
    for name in ("reference", "warnings", "cv_auc", "left_out", "refit", "folds"):
        old.__dict__.pop(name)
    loaded = tabular.load(tabular.save(old, tmp_path / "churn.joblib"))
    text = loaded.reasons(pd.DataFrame({"arpu": arpu}))
    assert text.iloc[0].startswith("arpu low (+") and text.iloc[-1].startswith("arpu high (-")
    assert loaded.warnings == () and loaded.cv_auc is None


def test_reasons_text_orders_signs_and_leaves_out_the_negligible():
    contrib = pd.DataFrame({"tenure": [-0.42, 0.001], "contract": [0.31, -0.002],
                            "charge": [0.05, 0.0]})
    words = pd.DataFrame({"tenure": ["low", "high"], "contract": ["month-to-month", "two"],
                          "charge": ["high", "typical"]})
    got = trust.reasons(contrib, words, top=2).tolist()
    assert got == ["tenure low (-0.42); contract month-to-month (+0.31)", trust.NO_REASON]


def test_load_refuses_what_is_not_a_model(tmp_path):
    import joblib

    joblib.dump({"not": "a model"}, tmp_path / "x.joblib")
    with pytest.raises(InputError, match=r"x.joblib: not a jingxin model \(a dict\)"):
        tabular.load(tmp_path / "x.joblib")
    (tmp_path / "broken.joblib").write_text("garbage")
    with pytest.raises(InputError, match=r"broken.joblib: cannot load the model"):
        tabular.load(tmp_path / "broken.joblib")
