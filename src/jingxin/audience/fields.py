"""The field catalogue: every name a segment spec may use, with its type.

The whitelist is built from the warehouse contract (:mod:`jingxin.data.warehouse.schema`)
and the feature table (:data:`jingxin.audience.features.FEATURES`), never from user input,
so a spec can only ever name a known column:

* ``region``, ``star_level``, ... — columns of ``subscribers``;
* ``plan.tier``, ``plan.monthly_fee``, ... — columns of the plan the subscriber holds;
* ``arpu``, ``price_sensitivity``, ``home_district``, ... — the feature table as of the
  spec's ``as_of`` (the latest build when absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pyarrow as pa

from jingxin.audience.features import FEATURES
from jingxin.data.warehouse.schema import PLANS, SUBSCRIBERS, TableSpec


@dataclass(frozen=True)
class FieldInfo:
    name: str  # as written in a spec
    column: str  # in the compiled base table
    source: str  # subscribers | plans | features
    kind: str  # string | int | float | date | bool | timestamp
    choices: tuple[str, ...] | None = None


def kind_of(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return "string"


def _add(out: dict[str, FieldInfo], spec: TableSpec, prefix: str, skip: set[str]) -> None:
    for col in spec.columns:
        if col.name in skip:
            continue
        name = f"{prefix}{col.name}"
        column = name.replace(".", "_")
        out[name] = FieldInfo(name, column, spec.name, kind_of(col.type), col.choices)


@cache
def catalogue() -> dict[str, FieldInfo]:
    out: dict[str, FieldInfo] = {}
    _add(out, SUBSCRIBERS, "", set())
    _add(out, PLANS, "plan.", {"plan_id"})
    _add(out, FEATURES, "", {"subscriber_id", "as_of"})
    return out


def lookup(name: str) -> FieldInfo | None:
    return catalogue().get(name)


def suggestion(name: str) -> str:
    """``; did you mean 'arpu'?`` or ``""``."""
    import difflib

    close = difflib.get_close_matches(name, list(catalogue()), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
