"""``jingxin experiment``: the statistics of an experiment from the command line
(docs/experiments.md; the formulas are in :mod:`jingxin.analytics.stats`).

- ``jingxin experiment size --baseline 2% (--lift 10% | --diff 0.002) [--alpha 0.05]
  [--power 80%] [--arms 3] [--ratio R | --holdout 5%] [--json]``: subscribers per arm before
  launch, and the audience to draw so a hold-out of that share is large enough;
- ``jingxin experiment compare FILE.csv [--control NAME | --holdout NAME] [--alpha]
  [--correction holm] [--json]``: each arm against the control, the CSV having columns
  ``arm, n, successes`` (and optionally ``metric``: one comparison per metric); or the
  arms given inline, ``--arm A=1000/37 --arm B=1000/52`` (NAME=N/SUCCESSES);
- ``jingxin experiment results (campaign ID | journey NAME | fence CODE) [--metric
  ordered] [--alpha] [--correction holm] [--json]``: the event log brought up to date, then
  each arm of a running experiment against its hold-out (incremental successes), or
  without one against its first arm (no uplift then: nothing untreated to count against).

Shares and rates are written as fractions (0.05) or percentages (5%). Bad input is one
error naming the option, or the file and line of each bad row (nothing is compared then).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.analytics.report_experiment import RESULT_METRICS
from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.analytics.stats import Arm, Comparison, Comparisons, SampleSize

app = typer.Typer(help="Experiments: sample sizes before launch, arms compared after.",
                  no_args_is_help=True)  # fmt: skip
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
AlphaOption = Annotated[str, typer.Option(
    "--alpha", help="Significance level, two-sided (0.05 or 5%).")]  # fmt: skip
COLUMNS = ("arm", "n", "successes")
MAX_BAD_ROWS = 10  # shown; the rest are counted


def share(text: str, option: str) -> float:
    """``0.05`` or ``5%`` as 0.05. A bare number above 1 is refused (a share of 5 is
    surely 5%), so is one that is no number."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a number (write 0.05 or 5%)") from None
    if not math.isfinite(value):
        raise InputError(f"{option}: {text!r} is not a number (write 0.05 or 5%)")
    if not raw.endswith("%") and abs(value) >= (1 if option == "--lift" else 1 + 1e-12):
        raise InputError(f"{option}: {text!r} would be {value:.0%}: write {raw}% for that "
                         f"many percent, or a fraction such as 0.05")  # fmt: skip
    return value


@app.command("size")
def size_command(
    baseline: Annotated[str, typer.Option(
        "--baseline", help="The control's expected rate (0.02 or 2%).", show_default=False)],
    lift: Annotated[str | None, typer.Option(
        "--lift", help="Smallest relative lift worth detecting (10% or 0.1).")] = None,
    diff: Annotated[str | None, typer.Option(
        "--diff", help="Smallest absolute difference worth detecting (0.002 or 0.2%).")] = None,
    alpha: AlphaOption = "0.05",
    power: Annotated[str, typer.Option("--power", help="Power (0.8 or 80%).")] = "0.8",
    arms: Annotated[int, typer.Option("--arms", help="Arms, control included.")] = 2,
    ratio: Annotated[float | None, typer.Option(
        "--ratio", help="Treated : control per treated arm (default 1).")] = None,
    holdout: Annotated[str | None, typer.Option(
        "--holdout", help="The control is a hold-out of this share of the audience (5%).")]
    = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribers an experiment needs before it is launched."""
    from jingxin.analytics.stats import sample_size

    size = sample_size(
        share(baseline, "--baseline"),
        min_lift=None if lift is None else share(lift, "--lift"),
        min_diff=None if diff is None else share(diff, "--diff"),
        alpha=share(alpha, "--alpha"), power=share(power, "--power"), ratio=ratio, arms=arms,
        holdout_share=None if holdout is None else share(holdout, "--holdout"))  # fmt: skip
    if as_json:
        typer.echo(json.dumps(_size_json(size), indent=2))
        return
    for line in _size_lines(size):
        console.print(Text(line))


def _size_json(size: SampleSize) -> dict[str, Any]:
    from dataclasses import asdict

    return {**asdict(size), "diff": size.diff, "lift": size.lift}


def _size_lines(s: SampleSize) -> list[str]:
    k = s.arms - 1
    each = f"alpha {s.alpha:g} two-sided"
    if k > 1:
        each += f", {s.alpha_per_comparison:.4g} per comparison ({k} treated arms, Bonferroni)"
    lines = [(f"baseline {_pct(s.baseline)} -> {_pct(s.expected)} (lift {s.lift:+.1%}, "
              f"difference {_pp(s.diff, s.baseline)}); {each}; power {s.power:.0%}")]
    treated = "each treated arm" if k > 1 else "treated"
    lines.append(f"control {s.n_control:,}, {treated} {s.n_treated:,}")
    if s.holdout_share is None:
        lines.append(f"total {s.total:,} subscribers")
    else:
        lines.append(f"with a {s.holdout_share * 100:.4g}% hold-out: draw an "
                     f"audience of {s.total:,}, so the hold-out has at least {s.n_control:,} "
                     f"and the treated {s.n_treated * k:,}")  # fmt: skip
    lines.append(f"method: {s.method}")
    return lines


@app.command("compare")
def compare_command(
    file: Annotated[Path | None, typer.Argument(
        help="CSV with columns arm, n, successes (and optionally metric).",
        show_default=False)] = None,
    arm: Annotated[list[str] | None, typer.Option(
        "--arm", help="NAME=N/SUCCESSES, e.g. A=1000/37 (repeat; instead of a file).")] = None,
    control: Annotated[str | None, typer.Option(
        "--control", help="The control arm (default: the first).")] = None,
    holdout: Annotated[str | None, typer.Option(
        "--holdout", help="The control arm, a hold-out that received nothing: also print "
        "the incremental successes.")] = None,
    alpha: AlphaOption = "0.05",
    correction: Annotated[str, typer.Option(
        "--correction", help="Multiple comparisons: holm, bonferroni or none.")] = "holm",
    as_json: JsonOption = False,
) -> None:
    """Each arm against the control: rates, difference, lift, p-value, incremental successes."""
    from jingxin.analytics.report_experiment import comparison_json
    from jingxin.analytics.stats import CORRECTIONS, compare_many

    if (file is None) == (not arm):
        raise InputError("give a CSV file or --arm NAME=N/SUCCESSES (twice or more), not both")
    if control is not None and holdout is not None:
        raise InputError("--control and --holdout both name the control: give one")
    if correction not in CORRECTIONS:
        raise InputError(f"--correction: {correction!r}: use {', '.join(CORRECTIONS)}")
    groups = read_csv(file) if file is not None else {None: [_inline(a) for a in arm or []]}
    level = share(alpha, "--alpha")
    results = {}
    for metric, arms in groups.items():
        try:
            results[metric] = compare_many(arms, control=holdout or control, alpha=level,
                                           correction=correction)  # type: ignore[arg-type]
        except InputError as exc:
            if file is None:
                raise
            where = f"{file} metric {metric}" if metric else str(file)
            raise InputError(f"{where}: {exc}") from None
    if as_json:
        typer.echo(json.dumps({"alpha": level, "correction": correction,
                               "holdout": holdout is not None,
                               "results": [comparison_json(m, groups[m], r, holdout is not None)
                                           for m, r in results.items()]},
                              ensure_ascii=False, indent=2))  # fmt: skip
        return
    for metric, result in results.items():
        _print_result(metric, groups[metric], result, holdout=holdout is not None)


def _inline(text: str) -> Arm:
    """``A=1000/37``: arm A, 1000 subscribers, 37 successes."""
    from jingxin.analytics.stats import Arm

    name, _, counts = text.rpartition("=")
    n, slash, successes = counts.partition("/")
    form = f"--arm {text!r}: give NAME=N/SUCCESSES, e.g. A=1000/37"
    if not name.strip() or not slash:
        raise InputError(form)
    try:
        return Arm(name.strip(), _whole(n, "N"), _whole(successes, "SUCCESSES"))
    except InputError as exc:
        raise InputError(f"{form} ({exc})") from None


def read_csv(path: Path) -> dict[str | None, list[Arm]]:
    """The arms of a CSV, by metric (None without a metric column), in file order.

    Header names are matched after trimming spaces, in any case. Every bad row is named
    by line; with any, the whole file is refused (a comparison missing an arm is wrong)."""
    from jingxin.audience.trust import column

    reader = csv.reader(io.StringIO(_text(path)))
    header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    if header is None:
        raise InputError(f"{path}: empty file: expected a header with {', '.join(COLUMNS)}")
    names = [cell.strip().lower() for cell in header]
    where = f"{path}:{reader.line_num}"
    index = {c: names.index(str(column(names, c, what=c, where=where))) for c in COLUMNS}
    if "metric" in names:
        index["metric"] = names.index("metric")
    groups: dict[str | None, list[Arm]] = {}
    lines: dict[tuple[str | None, str], int] = {}
    bad: list[str] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        try:
            metric, arm = _row(row, index)
            if (first := lines.get((metric, arm.name))) is not None:
                raise InputError(f"arm {arm.name} already given on line {first}")
        except InputError as exc:
            bad.append(f"{path}:{reader.line_num}: {exc}")
            continue
        lines[(metric, arm.name)] = reader.line_num
        groups.setdefault(metric, []).append(arm)
    if bad:
        more = f"\n... and {len(bad) - MAX_BAD_ROWS} more" if len(bad) > MAX_BAD_ROWS else ""
        raise InputError(f"{path}: {len(bad)} bad row(s), nothing compared:\n"
                         + "\n".join(bad[:MAX_BAD_ROWS]) + more)  # fmt: skip
    if not groups:
        raise InputError(f"{path}: no arms under the header")
    return groups


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (save the CSV as UTF-8)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def _row(row: list[str], index: dict[str, int]) -> tuple[str | None, Arm]:
    from jingxin.analytics.stats import Arm

    if len(row) <= max(index.values()):
        raise InputError(f"{len(row)} field(s), too few for the header")
    name = row[index["arm"]].strip()
    if not name:
        raise InputError("arm: empty")
    metric = row[index["metric"]].strip() if "metric" in index else None
    if metric == "":
        raise InputError(f"arm {name}: metric: empty")
    return metric, Arm(name, _whole(row[index["n"]], "n", name),
                       _whole(row[index["successes"]], "successes", name))  # fmt: skip


def _whole(text: str, field: str, arm: str | None = None) -> int:
    """A count: digits, thousands separated by commas or not (``12,345``)."""
    digits = text.strip().replace(",", "")
    if not re.fullmatch(r"[0-9]+", digits):
        who = f"arm {arm}: " if arm else ""
        raise InputError(f"{who}{field}: {text.strip()!r} is not a whole number of 0 or more")
    return int(digits)


def _print_result(metric: str | None, arms: list[Arm], result: Comparisons, *,
                  holdout: bool) -> None:  # fmt: skip
    level = f"{1 - result.alpha:.0%}"
    m = len(result.comparisons)
    adjusted = "" if result.correction == "none" or m < 2 else f" ({result.correction})"
    columns = ["arm", "n", "successes", f"rate ({level} CI)",
               f"vs {result.control.name} ({level} CI)", "lift", f"p{adjusted}", "significant"]
    if holdout:
        columns.append(f"incremental ({level} CI)")
    title = (f"{metric + ': ' if metric else ''}{len(arms)} arms, control {result.control.name}"
             f"{' (hold-out)' if holdout else ''}, alpha {result.alpha:g}")  # fmt: skip
    table = Table(*columns, title=title)
    by_name = {c.treated.name: c for c in result.comparisons}
    for arm in arms:
        table.add_row(*_cells(arm, result, by_name.get(arm.name), holdout=holdout))
    console.print(table)
    if m > 1 and result.correction != "none":
        console.print(Text(f"p-values {result.correction}-adjusted over {m} comparisons; "
                           "intervals are per comparison"))  # fmt: skip
    for name in result.empty:
        console.print(Text(f"arm {name}: no subscribers yet (n = 0), not compared"))


def _cells(arm: Arm, result: Comparisons, c: Comparison | None, *, holdout: bool) -> list[Any]:
    from jingxin.analytics.stats import uplift_of, wilson

    base = [Text(arm.name), f"{arm.n:,}", f"{arm.successes:,}"]
    if arm.n == 0:
        return base + ["-", "no subscribers: not compared", "-", "-", "-"] + (["-"] * holdout)
    rate = f"{_pct(arm.successes / arm.n)} {_range(wilson(arm.successes, arm.n, result.alpha))}"
    if c is None:  # the control
        role = "hold-out" if holdout else "control"
        return base + [rate, role, "", "", ""] + ([""] * holdout)
    lift = "-" if c.lift is None else f"{c.lift:+.1%}"
    low, high = c.diff_interval
    r0 = c.control.successes / c.control.n
    diff = f"{_pp(c.diff, r0)} [{_pp(low, r0)}, {_pp(high, r0)}]"
    cells = base + [rate, diff, lift, _p(c.p_adjusted),
                    "yes" if c.significant else "no"]  # fmt: skip
    if holdout:
        up = uplift_of(c)
        cells.append(f"{up.conversions:+,.0f} [{up.interval[0]:+,.0f}, {up.interval[1]:+,.0f}]")
    return cells


def _pct(rate: float) -> str:
    """A rate as a percentage, with a third decimal for small ones (complaints: 0.012%)."""
    return f"{rate:.3%}" if rate < 0.01 else f"{rate:.2%}"


def _pp(diff: float, baseline: float) -> str:
    """A difference in percentage points, to the precision :func:`_pct` gives the baseline."""
    return f"{diff * 100:+.3f} pp" if baseline < 0.01 else f"{diff * 100:+.2f} pp"


def _range(interval: tuple[float, float]) -> str:
    return f"[{_pct(interval[0])}, {_pct(interval[1])}]"


def _p(p: float) -> str:
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"


# ----------------------------------------------------------------------------- results

@app.command("results")
def results_command(
    source: Annotated[str, typer.Argument(
        help="What ran the experiment: campaign, journey or fence.", show_default=False)],
    name: Annotated[str, typer.Argument(
        help="The campaign's id, the journey's name or the fence's code.",
        show_default=False)],
    metric: Annotated[str, typer.Option(
        "--metric", help=f"The rate compared: {', '.join(RESULT_METRICS)}.")] = "ordered",
    alpha: AlphaOption = "0.05",
    correction: Annotated[str, typer.Option(
        "--correction", help="Multiple comparisons: holm, bonferroni or none.")] = "holm",
    as_json: JsonOption = False,
) -> None:
    """A running experiment's arms against its hold-out: rates, difference, p, incremental."""
    from jingxin.analytics.report_experiment import (
        check_options,
        experiment_name,
        experiment_results,
    )
    from jingxin.cli.arguments import settings_and_store

    experiment = experiment_name(source, name)
    check_options(metric=metric, correction=correction)
    level = share(alpha, "--alpha")
    settings, store = settings_and_store()
    try:
        results = experiment_results(store, experiment=experiment, settings=settings,
                                     metric=metric, alpha=level, correction=correction)  # fmt: skip
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps(results.as_dict(), ensure_ascii=False, indent=2))
        return
    rows, arms, result = results.rows, results.arms, results.comparison
    holdout = results.holdout
    _print_arms(experiment, rows, metric)
    if result is not None:
        _print_result(metric, arms, result, holdout=holdout is not None)
    elif len(arms) >= 2:
        for arm in arms:
            if arm.n == 0:
                console.print(Text(f"arm {arm.name}: empty (no subscribers assigned)"))
    for note in results.notes:
        console.print(Text(note))


def _print_arms(experiment: str, rows: list[dict[str, Any]], metric: str) -> None:
    kinds = ["sent", "delivered", "clicked", "replied", "ordered", "opted_out", "complained"]
    if metric not in kinds:
        kinds.append(metric)
    table = Table("arm", "assigned", *kinds, "value (yuan)", "cost (yuan)",
                  title=f"{experiment}: subscribers per arm")  # fmt: skip
    for row in rows:
        name = row["arm"] + (" (hold-out)" if row["holdout"] else "")
        table.add_row(Text(name), f"{row['assigned']:,}", *(f"{row[k]:,}" for k in kinds),
                      f"{row['value']:,.2f}", f"{row['cost']:,.2f}")  # fmt: skip
    console.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="experiment")
