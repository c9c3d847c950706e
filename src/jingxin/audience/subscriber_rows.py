"""The feature rows of chosen subscribers, as the propensity models see them.

One feature build (``features`` as of a date) joined with the profile columns of
``subscribers`` and passed through :func:`jingxin.audience.propensity.scoring_frame` (age
and months left on the contract as of the build): exactly the columns the churn and
response models were trained on, plus ``msisdn``. Used wherever a model scores or explains
particular numbers (``jingxin why``, the uplift model of a campaign, ``score-uplift``):
there is one feature pipeline, :mod:`jingxin.audience.features`; this module only picks
rows of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jingxin.audience.propensity import NOT_FEATURES, PROFILE, scoring_frame
from jingxin.audience.source import read
from jingxin.errors import WarehouseError

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

    from jingxin.data.warehouse.connection import Warehouse

# Columns of a feature row that identify the row rather than describe the subscriber.
IDENTIFIERS = frozenset(NOT_FEATURES | {"as_of", "msisdn"})


@dataclass(frozen=True)
class FeatureRows:
    """Feature rows (one per subscriber found) of the build ``as_of``."""

    frame: pd.DataFrame  # msisdn, subscriber_id, as_of, the features, age, contract months
    as_of: dt.date
    builds: tuple[dt.date, ...]  # every build in the warehouse, oldest first

    def features(self) -> pd.DataFrame:
        """The rows without their identifiers: what a model learns from."""
        return self.frame.drop(columns=[c for c in self.frame.columns if c in IDENTIFIERS])


def builds(warehouse: Warehouse) -> tuple[dt.date, ...]:
    from jingxin.audience.store import dates

    return tuple(dates(warehouse, "features"))


def choose_build(warehouse: Warehouse, *, as_of: dt.date | None = None,
                 on_or_before: dt.date | None = None) -> dt.date:
    """``as_of`` when given (it must exist), else the latest build on or before
    ``on_or_before`` (else the latest of all)."""
    built = builds(warehouse)
    if not built:
        raise WarehouseError("the features table is missing; build it with "
                             "`jingxin audience features --as-of DATE`")
    if as_of is not None:
        if as_of not in built:
            raise WarehouseError(f"--as-of {as_of}: no feature build that day; built: "
                                 f"{', '.join(map(str, built))}")
        return as_of
    if on_or_before is not None:
        before = [d for d in built if d <= on_or_before]
        if before:
            return before[-1]
    return built[-1]


def feature_rows(warehouse: Warehouse, *, msisdns: Sequence[str] | None = None,
                 ids: ir.Table | None = None, as_of: dt.date | None = None,
                 on_or_before: dt.date | None = None,
                 limit: int | None = None) -> FeatureRows:
    """The feature rows of ``msisdns`` (E.164), of the subscribers in ``ids`` (a table
    with ``subscriber_id``, e.g. a compiled segment), or of everyone in the build (the
    first ``limit`` by subscriber id when given). Numbers not in the warehouse, or not in
    the build, have no row."""
    import ibis
    import pandas as pd
    import pyarrow as pa

    day = choose_build(warehouse, as_of=as_of, on_or_before=on_or_before)
    f = warehouse.table("features")
    f = f.filter(f.as_of == day)
    s = read(warehouse, "subscribers", columns=["msisdn", *PROFILE])
    s = s.select("msisdn", *PROFILE)
    if msisdns is not None:
        wanted = ibis.memtable(pa.table({"msisdn": pa.array(sorted(set(msisdns)),
                                                            pa.string())}))
        s = s.semi_join(wanted, "msisdn")
    if ids is not None:
        s = s.semi_join(ids.select("subscriber_id"), "subscriber_id")
    clash = [c for c in s.columns if c != "subscriber_id" and c in f.columns]
    t = s.inner_join(f.drop(*clash) if clash else f, "subscriber_id")
    t = t.order_by("subscriber_id")
    frame = (t.limit(limit) if limit is not None else t).to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return FeatureRows(frame=scoring_frame(frame), as_of=day, builds=builds(warehouse))
