"""What a compiled segment holds: count, masked preview, breakdowns, overlaps, the SQL,
and the campaign export.

Numbers are masked in everything shown to a person (``+86138****5678``); only
:func:`export` writes whole msisdns, because a campaign needs them.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ibis

from jingxin.audience.usage import tenure_group, tenure_months
from jingxin.audience.window import AsOf
from jingxin.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from jingxin.audience.compile import Compiled
    from jingxin.data.warehouse.connection import Warehouse


def mask(msisdn: str | None) -> str | None:
    """``+8613812345678`` → ``+86138****5678`` (country code, 3 digits, last 4)."""
    if not msisdn or len(msisdn) < 10:
        return msisdn
    return msisdn[:6] + "*" * (len(msisdn) - 10) + msisdn[-4:]


def count(compiled: Compiled) -> int:
    # The bare ids: a composite's offer columns (nearest hall) do not change the count.
    return int(compiled.ids.count().execute())


def preview(compiled: Compiled, *, rows: int = 10,
            shown: Callable[[str | None], str | None] = mask) -> pd.DataFrame:
    """The first ``rows`` of the segment by subscriber id, each number through ``shown``
    (masked by default; the API passes the caller's own rule)."""
    t = compiled.expr
    df = t.order_by(t.subscriber_id).limit(rows).to_pandas()
    df["msisdn"] = df["msisdn"].map(shown)
    return df


def breakdown(warehouse: Warehouse, compiled: Compiled) -> dict[str, pd.DataFrame]:
    """Counts of the segment by plan, tenure group and region (largest first)."""
    subs = warehouse.table("subscribers")
    day = compiled.as_of or dt.date.today()
    subs = subs.select("subscriber_id", "plan_id", "region",
                       tenure_group=tenure_group(tenure_months(subs.entry_date, AsOf(day))))
    t = compiled.ids.select("subscriber_id").inner_join(subs, "subscriber_id")
    out = {}
    for col in ("plan_id", "tenure_group", "region"):
        g = t.group_by(col).aggregate(subscribers=t.count())
        out[col] = g.order_by([ibis.desc("subscribers"), col]).to_pandas()
    return out


@dataclass(frozen=True)
class Overlap:
    other: str
    this_count: int
    other_count: int
    both: int

    @property
    def jaccard(self) -> float:
        union = self.this_count + self.other_count - self.both
        return self.both / union if union else 0.0


def overlap(compiled: Compiled, other: Compiled, *, name: str) -> Overlap:
    a = compiled.ids.select("subscriber_id")
    b = other.ids.select("subscriber_id")
    both = int(a.intersect(b).count().execute())
    return Overlap(name, count(compiled), count(other), both)


def sql(compiled: Compiled, *, dialect: str | None = None) -> str:
    return str(ibis.to_sql(compiled.expr, dialect=dialect))


def audience_table(compiled: Compiled) -> pa.Table:
    """The segment as a campaign's audience: msisdn first, then the other columns (the
    subscriber id, a composite's offer columns), by subscriber id."""
    t = compiled.expr
    cols = ["msisdn", *[c for c in t.columns if c != "msisdn"]]
    return t.select(*cols).order_by("subscriber_id").to_pyarrow()


def export(compiled: Compiled, *, out: Path) -> int:
    """Write the segment (msisdn first) to ``out`` (.parquet or .csv), atomically: a
    temporary file renamed into place, so a failure never leaves half a list."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"{out}: export writes .parquet or .csv, not {suffix or 'no suffix'}")
    table = audience_table(compiled)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if suffix == ".parquet":
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(table, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return table.num_rows
