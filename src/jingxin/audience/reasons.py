"""Why one subscriber's churn score is what it is, in a form kept with a work order and
shown by ``jingxin why``: the largest contributions as (feature, value, contribution).

The contributions are :meth:`jingxin.audience.tabular.Trained.contributions` (how a
contribution is measured is in :mod:`jingxin.audience.trust`): this module only picks the
``top`` of each row and writes them down. A contribution under
:data:`MIN_CONTRIBUTION` says nothing and is left out. As text, reasons read
``tenure_months=3 (+0.120); complaint_count=2 (+0.045)`` (:func:`format_reasons`), and
:func:`parse_reasons` reads that text back.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jingxin.audience import tabular, trust

if TYPE_CHECKING:
    import pandas as pd

    from jingxin.data.warehouse.connection import Warehouse

TOP = 3
MIN_CONTRIBUTION = 0.005  # as trust.reasons: smaller moves are noise
REFERENCE_ROWS = 5000  # rows of the build a model without a reference is explained against
_PART = re.compile(r"^(?P<feature>.+?)=(?P<value>.*) \((?P<contribution>[+-][0-9.]+)\)$")


@dataclass(frozen=True)
class Reason:
    """One feature's part in a score: its value for the subscriber and how much it moved
    the score (score points, or log-odds for a linear model)."""

    feature: str
    value: str
    contribution: float

    def text(self) -> str:
        return f"{self.feature}={self.value} ({self.contribution:+.3f})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    text = str(value)
    return "missing" if text == trust.MISSING else text


def top_reasons(trained: tabular.Trained, frame: pd.DataFrame, *,
                top: int = TOP) -> list[tuple[Reason, ...]]:
    """Per row of ``frame``, its ``top`` largest contributions, largest first."""
    if frame.empty:
        return []
    contrib = trained.contributions(frame)
    x = tabular._prepare(trained._aligned(frame), trained)
    names = [str(c) for c in contrib.columns]
    values = contrib.to_numpy("float64")
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :top]
    out = []
    for i, picks in enumerate(order):
        out.append(tuple(
            Reason(names[j].strip(), _value(x.iloc[i, x.columns.get_loc(contrib.columns[j])]),
                   round(float(values[i, j]), 4))
            for j in picks if abs(values[i, j]) >= MIN_CONTRIBUTION))
    return out


def format_reasons(reasons: Sequence[Reason]) -> str:
    """``a=1 (+0.120); b=x (−0.050)``; empty for none."""
    return "; ".join(r.text() for r in reasons)


def parse_reasons(text: str | None) -> list[Reason]:
    """The reasons :func:`format_reasons` wrote; parts that do not read are skipped."""
    out = []
    for part in (text or "").split("; "):
        hit = _PART.match(part.strip())
        if hit:
            out.append(Reason(hit["feature"], hit["value"], float(hit["contribution"])))
    return out


@dataclass(frozen=True)
class Explained:
    """One subscriber's score on one feature build and its top reasons."""

    msisdn: str
    subscriber_id: int
    score: float
    reasons: tuple[Reason, ...]
    as_of: dt.date
    unit: str  # what a contribution is in: "score" points or "log-odds"


def explain_number(warehouse: Warehouse, trained: tabular.Trained, msisdn: str, *,
                   top: int = TOP) -> Explained | None:
    """The score and reasons of ``msisdn`` on the latest feature build; None when the
    number is not in it."""
    from jingxin.audience.subscriber_rows import feature_rows

    rows = feature_rows(warehouse, msisdns=[msisdn])
    if rows.frame.empty:
        return None
    if trained.reference is None:  # an old or hand-made model: explain against the build
        sample = feature_rows(warehouse, as_of=rows.as_of, limit=REFERENCE_ROWS)
        trained.ensure_reference(sample.frame)
    one = rows.frame.iloc[[0]]
    return Explained(msisdn=msisdn, subscriber_id=int(one["subscriber_id"].iloc[0]),
                     score=float(trained.score(one)[0]),
                     reasons=top_reasons(trained, one, top=top)[0], as_of=rows.as_of,
                     unit=trained.unit)
