"""``jingxin audience train-churn --csv`` and ``explain-score`` as a new user meets them:
a status column (Churned / Stayed / Joined), headers with stray spaces, a reason column
only churners have, then the scores file and one row's reasons."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.errors import InputError

runner = CliRunner()


def export(n: int = 300, seed: int = 11) -> pd.DataFrame:
    """A churn export the project has never seen: churn follows few months of tenure and
    a monthly contract; "Churn Reason" is filled after the fact, for churners only."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    contract = rng.choice(["Month-to-Month", "One Year", "Two Year"], n, p=[0.5, 0.25, 0.25])
    risk = -0.06 * (tenure - 30) + 1.8 * (contract == "Month-to-Month") - 1.2
    churned = rng.random(n) < 1 / (1 + np.exp(-risk))
    return pd.DataFrame({
        "Customer ID": [f"C{i:05d}" for i in range(n)],
        " Tenure in Months": tenure,
        "Contract ": contract,
        "Monthly Charge": rng.normal(65, 25, n).round(2),
        "Churn Reason": np.where(churned, rng.choice(["Competitor", "Price"], n), None),
        " Customer Status": np.where(churned, "Churned",
                                     np.where(tenure <= 6, "Joined", "Stayed")),
    })


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps lines to the terminal; a wide console keeps them whole for asserts."""
    from rich.console import Console

    import jingxin.cli.audience as cli_audience

    monkeypatch.setattr(cli_audience, "console", Console(width=250))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("JINGXIN_HOME", str(tmp_path))
    export().to_csv(tmp_path / "telco.csv", index=False)
    return tmp_path


def run(*args: object, ok: bool = True):
    done = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert done.exit_code == 0, done.output + repr(done.exception)
    return done


def fails(*args: object) -> str:
    done = run(*args, ok=False)
    assert isinstance(done.exception, InputError), done.output + repr(done.exception)
    return str(done.exception)


STATUS = ("--label", "Customer Status", "--positive", "Churned",
          "--drop-rows", "Customer Status=Joined", "--id-column", "Customer ID")


def test_train_score_and_explain_a_status_table(home) -> None:
    # Given the export, churned meaning "Churned", joiners left out, the reason left out
    scores = home / "out" / "scores.csv"
    out = run("audience", "train-churn", "--csv", home / "telco.csv", *STATUS,
              "--id-column", "Churn Reason", "--folds", "3", "--refit", "--test-size", "0.3",
              "--seed", "1", "--score-out", scores).output
    out = " ".join(out.split())  # the console wraps at the terminal's width
    frame = export()
    joined = int((frame[" Customer Status"] == "Joined").sum())
    used = len(frame) - joined
    test_rows = -(-3 * used // 10)  # ceil(0.3 × used), as sklearn rounds the hold-out
    # Then it reports the hold-out, the folds, the refit and the rows left out
    assert (f"on the hold-out (stratified 30% hold-out, seed 1; {used - test_rows} train / "
            f"{test_rows} test rows)") in out
    assert "cross-validation: AUC 0." in out and "over 3 stratified folds" in out
    assert f"refit on all {used} rows after evaluation" in out
    assert f"left out: {joined} rows with Customer Status = Joined (--drop-rows)" in out
    model = home / "var" / "models" / "churn-telco.joblib"
    assert f"model saved to {model}" in out
    # And every row of the file is scored, the hold-out marked, each with its reasons
    written = pd.read_csv(scores)
    assert list(written.columns[-3:]) == ["held_out", "reasons", "score"]
    assert len(written) == len(frame) and int(written["held_out"].sum()) == test_rows
    assert written["reasons"].str.match(r"^(Tenure in Months|Contract|Monthly Charge) ").all()
    # And explain-score on row 3 tells the same score and reasons as the scores file
    said = run("audience", "explain-score", "--model", model, "--csv", home / "telco.csv",
               "--row", "3").output
    assert f"telco.csv row 3 (line 4): score {written['score'][2]:.4f}" in said
    assert f"reasons: {written['reasons'][2]}" in said
    assert "Tenure in Months" in said and "typical" in said


def test_a_status_label_without_positive_names_its_values(home) -> None:
    message = fails("audience", "train-churn", "--csv", home / "telco.csv", "--label",
                    " Customer Status ")
    assert "the label has 3 values (Stayed (" in message
    assert "--positive VALUE" in message and "--drop-rows COLUMN=VALUE" in message


def test_a_reason_only_churners_have_is_refused_then_kept_with_a_warning(home) -> None:
    message = fails("audience", "train-churn", "--csv", home / "telco.csv", *STATUS)
    assert "'Churn Reason' (AUC 1.000) alone predicts" in message
    assert "--id-column 'Churn Reason'" in message and "--allow-leaky 'Churn Reason'" in message
    out = run("audience", "train-churn", "--csv", home / "telco.csv", *STATUS,
              "--allow-leaky", "Churn Reason").output
    assert "warning: 'Churn Reason' alone predicts ' Customer Status' (AUC 1.000)" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--label", "Status"), "no label column 'Status'; closest: 'Customer Status'"),
        ((*STATUS[:4], "--drop-rows", "Customer Status"),
         "--drop-rows 'Customer Status': write COLUMN=VALUE"),
        ((*STATUS[:4], "--drop-rows", "Customer Status=Joind"),
         "no row has 'Joind' in ' Customer Status' (values: Stayed ("),
        ((*STATUS, "--id-column", "Churn Reason", "--test-size", "1"),
         "--test-size 1.0: must be between 0 and 1"),
        ((*STATUS, "--id-column", "Churn Reason", "--time-column", "Month"),
         "no time column 'Month'"),
    ],
)
def test_bad_options_name_the_file_column_and_value(home, args, says) -> None:
    assert says in fails("audience", "train-churn", "--csv", home / "telco.csv", *args)


def test_explain_score_refuses_a_row_outside_the_file(home) -> None:
    assert "no such model" in fails("audience", "explain-score", "--model",
                                    home / "none.joblib", "--csv", home / "telco.csv",
                                    "--row", "1")
    run("audience", "train-churn", "--csv", home / "telco.csv", *STATUS, "--id-column",
        "Churn Reason")
    model = home / "var" / "models" / "churn-telco.joblib"
    assert fails("audience", "explain-score", "--model", model, "--csv", home / "telco.csv",
                 "--row", "0") == (f"--row 0: {home / 'telco.csv'} has rows 1 to 300 "
                                   "(1 = the first row under the header)")


def test_the_console_script_prints_one_line_and_exits_2(home) -> None:
    script = Path(sys.executable).with_name("jingxin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINGXIN_")}
    with (home / "t.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["id", "Churn"], *[[i, "maybe"] for i in range(3)]])
    done = subprocess.run([str(script), "audience", "train-churn", "--csv", "t.csv",
                           "--label", "Churn "], cwd=home, env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: t.csv: column 'Churn': label value 'maybe' (data row 1) is not true/false, yes/no "
        "or 1/0 (values: maybe (3)); say which value means churned with --positive VALUE")
