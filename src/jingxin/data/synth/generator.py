"""The synthetic operator's run: parameters in, a directory of warehouse tables out.

Subscribers are generated in chunks of :data:`CHUNK`; every table of a chunk draws from
its own random stream (:mod:`jingxin.data.synth.rng`), so the output depends only on the
parameters. Each chunk is written as it is made and then dropped: memory stays flat
whatever the number of subscribers.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from jingxin.data.synth import contacts, holdings, labels, mobility, offers, usage
from jingxin.data.synth.calendar import Calendar
from jingxin.data.synth.catalogue import plans_table, products_table
from jingxin.data.synth.cells import CellGrid, build_grid, read_stations
from jingxin.data.synth.numbering import MAX_SUBSCRIBERS
from jingxin.data.synth.rng import stream
from jingxin.data.synth.subscribers import draw_population, subscribers_table
from jingxin.data.synth.writer import TableSink, commit, prepare_output
from jingxin.errors import InputError

CHUNK = 250_000
VERSION = 1
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SynthParams:
    subscribers: int
    seed: int = 42
    as_of: dt.date = dt.date(2026, 10, 1)
    location_days: int = 7
    location_subscribers: int = 1_000_000
    cells: int = 20_000
    stations: Path | None = None

    def check(self) -> None:
        if not 0 < self.subscribers <= MAX_SUBSCRIBERS:
            raise InputError(f"--subscribers must be between 1 and {MAX_SUBSCRIBERS:,}, "
                             f"got {self.subscribers}")
        if self.as_of.day != 1:
            raise InputError(f"--as-of must be the first day of a month, got {self.as_of}")
        if not 0 < self.location_days <= 60:
            raise InputError(f"--location-days must be 1..60, got {self.location_days}")
        if self.location_subscribers < 0:
            raise InputError("--location-subscribers must be >= 0 (0 disables)")
        if not 500 <= self.cells <= 1_000_000:
            raise InputError(f"--cells must be 500..1,000,000, got {self.cells}")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"--seed must be a non-negative integer, got {self.seed}")


@dataclass
class Outcome:
    rows: dict[str, int]
    seconds: float
    manifest: dict


def _chunk(sink: TableSink, params: SynthParams, cal: Calendar, grid: CellGrid, index: int,
           churn: labels.Oracle, offer: labels.Oracle) -> None:
    seed, start = params.seed, index * CHUNK
    n = min(CHUNK, params.subscribers - start)
    pop = draw_population(stream(seed, "subscribers", index), start=start, n=n, seed=seed,
                          calendar=cal)
    sink.write("subscribers", subscribers_table(pop, seed))
    table, summary = usage.generate(stream(seed, "usage_monthly", index), pop, cal)
    sink.write("usage_monthly", table)
    rng = stream(seed, "holdings", index)
    table, current = holdings.holdings_table(rng, pop, holdings.draw_holdings(rng, pop), cal)
    sink.write("holdings", table)
    complained = contacts.complaints(stream(seed, "complaints", index), pop, summary, cal)
    sink.write("complaints", complained.table(pop))
    sink.write("channel_contacts", contacts.channel_contacts(
        stream(seed, "channel_contacts", index), pop, complained, cal))
    rng = stream(seed, "churn_labels", index)
    p = labels.churn_probability(rng, pop, summary, complained.general, current, cal)
    sink.write("churn_labels", labels.churn_labels(rng, pop, p, cal, churn))
    sink.write("offers", offers.offers(stream(seed, "offers", index), pop, summary, current,
                                       cal, offer))
    located = max(0, min(n, params.location_subscribers - start))
    if located:
        rng = stream(seed, "location_events", index)
        for batch in mobility.location_events(rng, pop.slice(0, located), grid, cal,
                                              days=params.location_days):
            sink.write("location_events", batch)


def synthesize(*, params: SynthParams, out: Path, force: bool = False,
               progress: Progress | None = None) -> Outcome:
    """Generate every warehouse table into ``out``; return row counts and the manifest."""
    params.check()
    stations = read_stations(params.stations) if params.stations else None
    staging = prepare_output(out, force=force)
    began = time.perf_counter()
    cal = Calendar(params.as_of)
    grid = build_grid(stream(params.seed, "cells"), cells=params.cells, stations=stations)
    sink = TableSink(staging)
    churn, offer = labels.Oracle(), labels.Oracle()
    try:
        sink.write("plans", plans_table())
        sink.write("products", products_table())
        sink.write("cells", grid.table())
        chunks = -(-params.subscribers // CHUNK)
        for index in range(chunks):
            _chunk(sink, params, cal, grid, index, churn, offer)
            if progress:
                progress("subscribers", min((index + 1) * CHUNK, params.subscribers),
                         params.subscribers)
        sink.close()
        seconds = time.perf_counter() - began
        manifest = _manifest(params, sink.rows, churn, offer)
        (staging / "synth.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
        commit(staging, out)
    except BaseException:
        sink.abort()
        raise
    return Outcome(rows=dict(sink.rows), seconds=seconds, manifest=manifest)


def _manifest(params: SynthParams, rows: dict[str, int], churn: labels.Oracle,
              offer: labels.Oracle) -> dict:
    """synth.json: deterministic (no timings), so two equal runs compare byte for byte."""
    p = {k: (str(v) if isinstance(v, (dt.date, Path)) else v) for k, v in asdict(params).items()}
    cal = Calendar(params.as_of)
    return {
        "generator": "jingxin synth", "version": VERSION, "seed": params.seed,
        "parameters": p,
        "chunk_subscribers": CHUNK, "rows": rows,
        "usage_months": [str(m) for m in cal.months],
        "location_window": [str(params.as_of - dt.timedelta(days=params.location_days)),
                            str(params.as_of)],
        "churn": {"as_of": str(params.as_of), "horizon_months": 3,
                  "rate": round(churn.rate, 6), "oracle_auc": _round(churn.auc),
                  "coefficients": labels.CHURN_COEF},
        "offers": {"window_days": labels.OFFER_DAYS, "response_rate": round(offer.rate, 6),
                   "oracle_auc": _round(offer.auc), "coefficients": labels.OFFER_COEF},
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
