"""``jingxin sendtime``: the local hours subscribers respond at (:mod:`jingxin.analytics.sendtime`).

- ``jingxin sendtime learn [--out hours.parquet] [--prior-weight 3]``: learn every
  subscriber's best hour from the event log (replies and clicks; run ``jingxin events
  collect`` first), print the population's hours as a bar chart and how many subscribers
  have a signal of their own, and write the table (Parquet) with ``--out``;
- ``jingxin sendtime show NUMBER``: that number's responses by hour and its best hour.

Hours are local to ``[policy] default_timezone`` unless ``--tz`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from jingxin.cli.arguments import console

app = typer.Typer(help="Send-time optimisation: the hours subscribers respond at.",
                  no_args_is_help=True)  # fmt: skip

TzOption = Annotated[str | None, typer.Option(
    "--tz", help="IANA time zone of the hours (default: [policy] default_timezone).")]
PriorOption = Annotated[float, typer.Option(
    "--prior-weight", min=0.0,
    help="How many responses' worth of the population's hours each subscriber starts with.")]
BAR = 40  # characters of the longest bar


def bars(shares: list[float], *, width: int = BAR) -> list[str]:
    """One line per hour: ``08h ████▌ 4.2%`` (the longest bar ``width`` characters)."""
    top = max(shares) or 1.0
    lines = []
    for hour, share in enumerate(shares):
        eighths = round(share / top * width * 8)
        bar = "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]
        lines.append(f"{hour:02d}h {bar:<{width + 1}} {share:5.1%}")
    return lines


@app.command("learn")
def learn_command(
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the learned hours here (Parquet: msisdn, best_hour, responses, "
        "confidence).")] = None,
    tz: TzOption = None,
    prior_weight: PriorOption = 3.0,
) -> None:
    """Learn each subscriber's best local hour from replies and clicks."""
    import json

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from jingxin.analytics.sendtime import POPULATION_KEY, learn_hours
    from jingxin.cli.arguments import settings_and_store

    settings, store = settings_and_store()
    zone = tz or settings.policy.default_timezone
    try:
        hours = learn_hours(store, tz=zone, prior_weight=prior_weight)
    finally:
        store.dispose()
    if not hours.num_rows:
        console.print("no replies or clicks in the event log yet (run `jingxin events collect`)")
        return
    shares = json.loads(hours.schema.metadata[POPULATION_KEY])
    responses = int(pc.sum(hours.column("responses")).as_py())
    console.print(Text(f"responses by local hour ({zone}), {responses:,} from "
                       f"{hours.num_rows:,} subscribers:"))  # fmt: skip
    for line in bars(shares):
        console.print(Text(line))
    own = int(pc.sum(pc.greater_equal(hours.column("responses"), max(prior_weight, 1))).as_py())
    console.print(Text(f"{hours.num_rows:,} subscribers have responses of their own; "
                       f"{own:,} have at least {max(prior_weight, 1):g} (their own hours "
                       f"outweigh the population's)"))  # fmt: skip
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(hours, out)
        console.print(Text(f"wrote {out}"))


@app.command("show")
def show_command(
    msisdn: Annotated[str, typer.Argument(help="The number, e.g. 13812345678.")],
    tz: TzOption = None,
    prior_weight: PriorOption = 3.0,
) -> None:
    """A number's responses by local hour and its best hour."""
    import numpy as np

    from jingxin.analytics.sendtime import hour_counts, population_shares, smooth
    from jingxin.cli.arguments import number, settings_and_store

    e164 = number(msisdn, field="NUMBER")
    settings, store = settings_and_store()
    zone = tz or settings.policy.default_timezone
    try:
        _, all_hours, all_counts = hour_counts(store, tz=zone)
        _, hours, counts = hour_counts(store, tz=zone, msisdn=e164)
    finally:
        store.dispose()
    population = population_shares(all_hours, all_counts)
    own = np.bincount(hours, weights=counts, minlength=24)[:24]
    best, confidence = smooth(own[None, :], population, prior_weight)
    total = int(own.sum())
    if total:
        by_hour = ", ".join(f"{h:02d}h {int(n)}" for h, n in enumerate(own) if n)
        console.print(Text(f"{e164}: {total} responses ({zone}): {by_hour}"))
        console.print(Text(f"best hour {int(best[0]):02d}:00-{int(best[0]):02d}:59, "
                           f"confidence {confidence[0]:.2f}"))  # fmt: skip
    else:
        console.print(Text(f"{e164}: no replies or clicks; the population's best hour "
                           f"{int(best[0]):02d}:00 stands for it"))  # fmt: skip


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="sendtime")
