"""``jingxin experiment size`` and ``compare`` end to end: sample sizes (text and JSON, a
hold-out share, percentages or fractions), a CSV compared per metric with Holm-adjusted
p-values and a hold-out's incremental conversions, the quick ``--arm`` form; an empty arm
answered, and bad input refused naming the option, or the file and line of each bad row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from jingxin.analytics.stats import Arm, compare_many, uplift
from jingxin.cli import experiment
from jingxin.errors import InputError

RESULTS = """\ufeff Arm , N ,successes , metric
control,20000,400,conversion
sms_a,"20,000",480,conversion
sms_b,20000,430,conversion
sms_c,0,0,conversion
control,20000,30,unsubscribe
sms_a,20000,52,unsubscribe
sms_b,20000,33,unsubscribe
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch):
    """The experiment group on a root of its own (as jingxin.cli assembles it)."""
    monkeypatch.chdir(tmp_path)
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """A group root, so `experiment` is a sub-command as in the real app."""

    experiment.register(root)
    runner = CliRunner()
    return lambda *args: runner.invoke(root, ["experiment", *args])


def ok(done) -> str:
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"
    return done.output


def refused(done) -> str:
    assert isinstance(done.exception, InputError), f"{done.output}\n{done.exception!r}"
    return str(done.exception)


def test_size_prints_per_arm_and_total(cli) -> None:
    out = ok(cli("size", "--baseline", "0.10", "--diff", "2%"))
    assert "baseline 10.00% -> 12.00% (lift +20.0%, difference +2.00 pp)" in out
    assert "control 3,841, treated 3,841\ntotal 7,682 subscribers" in out
    assert "method: normal approximation" in out
    three = json.loads(ok(cli("size", "--baseline", "2%", "--lift", "10%", "--arms", "3",
                              "--json")))  # fmt: skip
    assert three["arms"] == 3 and three["alpha_per_comparison"] == pytest.approx(0.025)
    assert three["total"] == 3 * three["n_control"] and three["lift"] == pytest.approx(0.1)


def test_size_with_a_holdout_gives_the_audience_to_draw(cli) -> None:
    data = json.loads(ok(cli("size", "--baseline", "0.02", "--lift", "0.1", "--holdout", "5%",
                             "--json")))  # fmt: skip
    assert data["holdout_share"] == 0.05 and data["ratio"] == pytest.approx(19)
    assert data["total"] * 0.05 >= data["n_control"]
    out = ok(cli("size", "--baseline", "0.02", "--lift", "0.1", "--holdout", "5%"))
    assert (f"with a 5% hold-out: draw an audience of {data['total']:,}, so the hold-out has "
            f"at least {data['n_control']:,}") in out  # fmt: skip


@pytest.mark.parametrize(("args", "message"), [
    (["--holdout", "0%"], ("--holdout: 0 is not a hold-out share strictly between 0 and 1 "
                          "(0% holds no one out, 100% treats no one)")),
    (["--holdout", "100%"], "--holdout: 1 is not a hold-out share"),
    (["--holdout", "lots"], "--holdout: 'lots' is not a number (write 0.05 or 5%)"),
    (["--lift", "10"], "--lift: '10' would be 1000%: write 10% for that many percent"),
    (["--baseline", "2"], "--baseline: '2' would be 200%: write 2% for that many percent"),
    (["--diff", "0.01"], "one of them"),
    (["--arms", "1"], "--arms: 1: an experiment has 2 arms or more"),
])  # fmt: skip
def test_size_refusals_name_the_option(cli, args, message) -> None:
    base = {"--baseline": "2%", "--lift": "10%"}
    for option, value in zip(args[::2], args[1::2], strict=True):
        base[option] = value
    assert message in refused(cli("size", *[x for kv in base.items() for x in kv]))


def test_compare_a_csv_per_metric(cli, tmp_path: Path) -> None:
    # Given a CSV with a BOM, spaced and capitalised headers, a thousands separator, two
    # metrics and an arm with no subscribers yet
    (tmp_path / "results.csv").write_text(RESULTS, encoding="utf-8")
    data = json.loads(ok(cli("compare", "results.csv", "--json")))
    conversion, unsubscribe = data["results"]
    assert (conversion["metric"], conversion["control"]) == ("conversion", "control")
    assert conversion["empty"] == ["sms_c"] and unsubscribe["empty"] == []
    rows = {r["arm"]: r for r in conversion["arms"]}
    assert rows["control"]["role"] == "control" and rows["sms_c"]["role"] == "empty"
    # Then the numbers are the library's: Holm over the two compared arms
    expected = compare_many([Arm("control", 20000, 400), Arm("sms_a", 20000, 480),
                             Arm("sms_b", 20000, 430), Arm("sms_c", 0, 0)])  # fmt: skip
    for c in expected.comparisons:
        row = rows[c.treated.name]
        assert (row["diff_low"], row["diff_high"]) == pytest.approx(c.diff_interval)
        assert row["p_adjusted"] == pytest.approx(c.p_adjusted)
        assert row["significant"] is c.significant
    assert rows["sms_a"]["p_adjusted"] == pytest.approx(2 * rows["sms_a"]["p"])
    assert rows["sms_a"]["significant"] is True and rows["sms_b"]["significant"] is False
    # And the table says the same, with the empty arm answered rather than compared
    out = ok(cli("compare", "results.csv"))
    assert "conversion: 4 arms, control control, alpha 0.05" in out
    assert "unsubscribe: 3 arms" in out
    assert "│ sms_a   │ 20,000 │ 480       │ 2.40% [2.20%, 2.62%] │ +0.40 pp [" in out
    assert "no subscribers: not compared" in out
    assert "arm sms_c: no subscribers yet (n = 0), not compared" in out
    assert "p-values holm-adjusted over 2 comparisons" in out
    # small rates keep a third decimal (unsubscribes, complaints)
    assert "│ 0.260% [0.198%, 0.341%] │ +0.110 pp [+0.021 pp, +0.202 pp] │ +73.3% │" in out


def test_compare_against_a_holdout_prints_incremental_conversions(cli) -> None:
    data = json.loads(ok(cli("compare", "--arm", "sms=95000/2185", "--arm", "held=5000/100",
                             "--holdout", "held", "--json")))  # fmt: skip
    sms, held = data["results"][0]["arms"]
    assert held["role"] == "holdout" and data["holdout"] is True
    up = uplift(Arm("sms", 95000, 2185), Arm("held", 5000, 100))
    assert sms["incremental"]["successes"] == pytest.approx(up.conversions)
    assert (sms["incremental"]["low"], sms["incremental"]["high"]) == pytest.approx(up.interval)
    assert sms["incremental"]["successes"] == pytest.approx(0.003 * 95000)
    out = ok(cli("compare", "--arm", "sms=95000/2185", "--arm", "held=5000/100",
                 "--holdout", "held"))  # fmt: skip
    assert "control held (hold-out)" in out and "incremental (95% CI)" in out
    assert f"{up.conversions:+,.0f} [{up.interval[0]:+,.0f}, {up.interval[1]:+,.0f}]" in out


def test_compare_quick_form(cli) -> None:
    out = ok(cli("compare", "--arm", "A=1000/37", "--arm", "B=1000/52", "--control", "A",
                 "--alpha", "10%"))  # fmt: skip
    assert "2 arms, control A, alpha 0.1" in out
    assert "│ B   │ 1,000 │ 52        │ 5.20% [" in out and "+40.5%" in out and "0.1038" in out
    assert "│ no          │" in out  # p 0.104 is not below 0.10


@pytest.mark.parametrize(("args", "message"), [
    (["--arm", "A=37/1000", "--arm", "B=1000/52"],
     ("--arm 'A=37/1000': give NAME=N/SUCCESSES, e.g. A=1000/37 (arm A: 1000 successes out of "
     "n = 37: successes cannot exceed n)")),
    (["--arm", "A:1000:37", "--arm", "B=1000/52"], "--arm 'A:1000:37': give NAME=N/SUCCESSES"),
    (["--arm", "A=0/0", "--arm", "B=1000/52"],
     "arm A (the control) has no subscribers (n = 0): nothing to compare yet"),
    (["--arm", "A=1000/37", "--arm", "B=1000/52", "--control", "C"],
     "control arm 'C' is not one of the arms (A, B)"),
    (["--arm", "A=1000/37", "--arm", "B=1000/52", "--control", "A", "--holdout", "A"],
     "--control and --holdout both name the control: give one"),
    (["--arm", "A=1000/37", "--arm", "B=1000/52", "--correction", "fdr"],
     "--correction: 'fdr': use holm, bonferroni, none"),
    ([], "give a CSV file or --arm NAME=N/SUCCESSES"),
])  # fmt: skip
def test_compare_refusals(cli, args, message) -> None:
    assert message in refused(cli("compare", *args))


def test_a_bad_csv_is_refused_naming_file_and_line(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("arm,n,successes\nA,1000,37\n\nB,1000,x\nC,10,11\nA,5,1\nD,7\n",
                   encoding="utf-8")  # fmt: skip
    assert refused(cli("compare", "bad.csv")) == (
        "bad.csv: 4 bad row(s), nothing compared:\n"
        "bad.csv:4: arm B: successes: 'x' is not a whole number of 0 or more\n"
        "bad.csv:5: arm C: 11 successes out of n = 10: successes cannot exceed n\n"
        "bad.csv:6: arm A already given on line 2\n"
        "bad.csv:7: 2 field(s), too few for the header")
    (tmp_path / "cols.csv").write_text("arms,n,successes\nA,1,0\n", encoding="utf-8")
    assert refused(cli("compare", "cols.csv")) == "cols.csv:1: no arm column 'arm'; closest: 'arms'"
    (tmp_path / "empty.csv").write_text("\n", encoding="utf-8")
    assert "empty.csv: empty file" in refused(cli("compare", "empty.csv"))
    (tmp_path / "header.csv").write_text("arm,n,successes\n", encoding="utf-8")
    assert refused(cli("compare", "header.csv")) == "header.csv: no arms under the header"
    assert refused(cli("compare", "missing.csv")) == "missing.csv: no such file"
    (tmp_path / "gbk.csv").write_bytes("arm,n,successes\n对照,10,1\n".encode("gbk"))
    assert "gbk.csv: not UTF-8 text" in refused(cli("compare", "gbk.csv"))
    (tmp_path / "ctl.csv").write_text("arm,n,successes,metric\nA,10,1,click\nB,10,2,click\n"
                                      "B,10,2,reply\nC,10,1,reply\n", encoding="utf-8")  # fmt: skip
    assert refused(cli("compare", "ctl.csv", "--control", "A")) == \
        "ctl.csv metric reply: control arm 'A' is not one of the arms (B, C)"  # fmt: skip
