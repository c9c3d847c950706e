"""``jingxin bench synth``: how fast the synthetic operator fills a warehouse.

Scale is the number of subscribers (default 1,000,000), written with six months of usage
and no location events (``--location-subscribers 0``; location events have their own
benchmark, ``synth-location``, scale = subscribers with a week of events). Figures:
seconds, rows per table, rows per second and the peak resident memory of the process.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from pathlib import Path

from jingxin.bench import Figures, benchmark


def _run(subscribers: int, location_subscribers: int) -> Figures:
    from jingxin.data.synth import SynthParams, synthesize

    out = Path(tempfile.mkdtemp(prefix="jingxin-bench-synth-"))
    try:
        began = time.perf_counter()
        outcome = synthesize(params=SynthParams(subscribers=subscribers,
                                                location_subscribers=location_subscribers),
                             out=out, force=True)
        seconds = time.perf_counter() - began
        size = sum(p.stat().st_size for p in out.iterdir())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rows = sum(outcome.rows.values())
    return {
        "seconds": round(seconds, 2),
        "rows": outcome.rows,
        "rows_total": rows,
        "rows_per_second": round(rows / seconds),
        "subscribers_per_second": round(subscribers / seconds),
        "bytes_written": size,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "churn_oracle_auc": outcome.manifest["churn"]["oracle_auc"],
        "offer_oracle_auc": outcome.manifest["offers"]["oracle_auc"],
    }


@benchmark("synth", summary="Synthetic operator: N subscribers, 6 months of usage, no "
           "location events", default_scale=1_000_000)
def synth(scale: int) -> Figures:
    return {"location_events": "disabled", **_run(scale, 0)}


@benchmark("synth-location", summary="Synthetic operator with a week of location events "
           "for every subscriber", default_scale=100_000)
def synth_location(scale: int) -> Figures:
    return {"location_days": 7, **_run(scale, scale)}
