"""``jingxin fence synth-morning``: a synthetic morning of location events to replay.

``jingxin fence synth-morning --out FILE [--day D] [--seed S] [--airport-share X]
[--subscribers N] [--warehouse W]`` writes the events of 06:00-11:00 local of day D for
the subscribers of a synthetic warehouse (:mod:`jingxin.geofence.synthetic`) to FILE:
CSV (``msisdn,cell,ts,type``, ts ISO-8601 +08:00) or Parquet, by its suffix.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from jingxin.cli.arguments import console, read_warehouse
from jingxin.errors import InputError


def _day(text: str | None) -> dt.date:
    if text is None:  # today in Shanghai, where the synthetic operator is
        return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--day: {text!r} is not a date (YYYY-MM-DD)") from None


def register(app: typer.Typer) -> None:
    @app.command("synth-morning")
    def synth_morning(
        out: Annotated[Path, typer.Option("--out", help="Events file: .csv or .parquet.")],
        day: Annotated[str | None, typer.Option(
            "--day", help="The day (YYYY-MM-DD; default: today in Shanghai).")] = None,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
        airport_share: Annotated[float, typer.Option(
            "--airport-share", help="Share of subscribers making an airport trip.")] = 0.02,
        subscribers: Annotated[int | None, typer.Option(
            "--subscribers", min=1, help="At most this many subscribers (a seeded sample).")] = None,
        warehouse: Annotated[Path | None, typer.Option(
            "--warehouse", help="DuckDB warehouse file (default: warehouse.path).")] = None,
    ) -> None:
        """Write a synthetic morning (06:00-11:00) of location events for the warehouse's
        subscribers: commutes, airport trips, malls, stations, roaming abroad."""
        from jingxin.config import load_settings
        from jingxin.geofence.synthetic import morning, write_events

        when = _day(day)
        if out.suffix.lower() not in (".csv", ".parquet"):
            raise InputError(f"--out {out}: the events file must end in .csv or .parquet")
        with read_warehouse(load_settings(), warehouse) as wh:
            table = morning(wh, day=when, seed=seed, subscribers=subscribers,
                            airport_share=airport_share)  # fmt: skip
        write_events(table, out)
        people = len(table["msisdn"].unique())
        console.print(f"{table.num_rows:,} events of {people:,} subscribers on "
                      f"{when.isoformat()} 06:00-11:00 written to {out}")  # fmt: skip
