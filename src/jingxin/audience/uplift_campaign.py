"""The rows an uplift model learns from for one campaign: every subscriber assigned to the
campaign's experiment (``campaign:<id>``), treated or held out, what they did
(:func:`jingxin.analytics.metrics.subscriber_outcomes`: run ``jingxin events collect``
first) and their warehouse features (:mod:`jingxin.audience.subscriber_rows`).

The features are those of the latest build on or before the day the campaign started, so
the model learns from what was known before the message (a later build may already show
the message's effect); without such a build, the earliest one after, and the rows say so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from jingxin.audience.subscriber_rows import IDENTIFIERS, feature_rows
from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.data.store.engine import Store
    from jingxin.data.warehouse.connection import Warehouse

OUTCOMES = ("clicked", "replied", "ordered")


@dataclass(frozen=True)
class CampaignRows:
    """One row per assigned subscriber found in the feature build."""

    experiment: str
    outcome: str
    frame: pd.DataFrame  # msisdn, subscriber_id, as_of, features; treated, outcome flags
    assigned: int  # subscribers assigned (treated + held out)
    unmatched: int  # of those, not in the warehouse's feature build
    as_of: dt.date
    started: dt.date | None  # the day the campaign started, when known
    notes: tuple[str, ...] = ()

    @property
    def treated(self) -> np.ndarray:
        return self.frame["treated"].to_numpy(bool)

    @property
    def outcomes(self) -> np.ndarray:
        return self.frame[self.outcome].to_numpy(bool)

    def features(self) -> pd.DataFrame:
        drop = IDENTIFIERS | {"arm", "holdout", "treated", self.outcome}
        return self.frame.drop(columns=[c for c in self.frame.columns if c in drop])


def campaign_rows(store: Store, warehouse: Warehouse, *, campaign_id: int,
                  outcome: str = "ordered", as_of: dt.date | None = None,
                  attribution_days: float = 7.0) -> CampaignRows:  # fmt: skip
    """The campaign's subscribers with their group, outcome and features (orders within
    ``attribution_days`` of the assignment, ``[analytics] attribution_days``)."""
    from jingxin.analytics.metrics import subscriber_outcomes

    if outcome not in OUTCOMES:
        raise InputError(f"--outcome {outcome!r}: choose one of {', '.join(OUTCOMES)}")
    experiment = f"campaign:{campaign_id}"
    people = subscriber_outcomes(store, experiment,
                                 attribution_days=attribution_days).to_pandas()
    if people.empty:
        raise InputError(f"campaign {campaign_id}: no subscriber was assigned (experiment "
                         f"{experiment} is empty)")
    if not people["holdout"].any():
        raise InputError(f"campaign {campaign_id} has no hold-out: all {len(people)} "
                         "assigned subscribers were treated, so there is nobody to compare "
                         "with (send with a hold-out share: [analytics] holdout)")
    started = _started(store, campaign_id)
    rows = feature_rows(warehouse, msisdns=people["msisdn"].tolist(), as_of=as_of,
                        on_or_before=started)
    notes = []
    if as_of is None and started is not None and rows.as_of > started:
        notes.append(f"no feature build on or before the campaign started ({started}): "
                     f"using {rows.as_of}, which may already show the message's effect")
    people = people[["msisdn", "arm", "holdout", outcome]]
    frame = rows.frame.merge(people, on="msisdn", how="inner")
    frame["treated"] = ~frame["holdout"].astype(bool)
    unmatched = len(people) - len(frame)
    if unmatched:
        notes.append(f"{unmatched} of {len(people)} assigned subscribers are not in the "
                     f"feature build of {rows.as_of}: left out")
    return CampaignRows(experiment=experiment, outcome=outcome,
                        frame=frame.reset_index(drop=True), assigned=len(people),
                        unmatched=unmatched, as_of=rows.as_of, started=started,
                        notes=tuple(notes))


def _started(store: Store, campaign_id: int) -> dt.date | None:
    """The day the campaign started (else was created); None without a campaign row."""
    from sqlalchemy import select

    from jingxin.data.store.models.content import Campaign

    with store.transaction() as session:
        row = session.execute(select(Campaign.started_at, Campaign.created_at).where(
            Campaign.id == campaign_id)).first()
    if row is None:
        return None
    moment = row.started_at or row.created_at
    return moment.date() if moment is not None else None
