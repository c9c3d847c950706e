"""How a multi-step journey is doing: where its enrolments are, and whether the treated
converted more than the hold-out group (``jingxin flow status``).

A goal is ``ordered`` (a placed hall order), ``claimed`` (a gift claim) or ``replied`` (an
MO attributed to a message of the journey) after the subscriber entered.

Also the recorded runs (``journey_runs``: the daily scan's triggers and the journeys' daily
enrolments, ``flow:<name>``) as ``jingxin journeys runs`` and the API show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import Session

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import (
    GiftClaim,
    HallOrder,
    JourneyEnrolment,
    JourneyRun,
    MoMessage,
    MoOutcome,
)
from jingxin.errors import InputError



@dataclass(frozen=True)
class Group:
    """Enrolments of one group (treated or hold-out) and how many reached the goal."""

    enrolled: int = 0
    converted: int = 0

    @property
    def rate(self) -> float | None:
        return self.converted / self.enrolled if self.enrolled else None


@dataclass(frozen=True)
class JourneyStatus:
    journey: str
    goal: str
    positions: list[tuple[str | None, str, str | None, int]]  # (step, state, outcome, n)
    treated: Group
    holdout: Group

    @property
    def uplift(self) -> float | None:
        """Treated minus hold-out conversion (percentage points as a fraction)."""
        if self.treated.rate is None or self.holdout.rate is None:
            return None
        return self.treated.rate - self.holdout.rate


def journey_status(store: Store, journey: str, *, goal: str = "ordered",
                   tenant_id: str | None = None) -> JourneyStatus:
    """Enrolments of ``journey`` (of ``tenant_id`` when given) by step, state and outcome,
    and the conversion (``goal`` done after entering) of the treated and the hold-out
    group."""
    E = JourneyEnrolment
    converted = func.sum(case((_converted(goal, journey), 1), else_=0))
    mine = [E.journey == journey] + ([E.tenant_id == tenant_id] if tenant_id is not None else [])
    with store_errors(f"reading the status of journey {journey}"), store.transaction() as s:
        positions = [tuple(r) for r in s.execute(
            select(E.step, E.state, E.outcome, func.count()).where(*mine)
            .group_by(E.step, E.state, E.outcome).order_by(E.state, E.step, E.outcome))]  # fmt: skip
        groups = {bool(held): Group(int(n), int(c or 0)) for held, n, c in s.execute(
            select(E.holdout, func.count(), converted).where(*mine)
            .group_by(E.holdout))}  # fmt: skip
    return JourneyStatus(journey, goal, positions, groups.get(False, Group()),
                         groups.get(True, Group()))  # fmt: skip


def _converted(goal: str, journey: str) -> Any:
    E = JourneyEnrolment
    if goal == "ordered":
        return exists().where(HallOrder.msisdn == E.msisdn, HallOrder.state == "placed",
                              HallOrder.created_at >= E.entered_at)  # fmt: skip
    if goal == "claimed":
        return exists().where(GiftClaim.msisdn == E.msisdn, GiftClaim.claimed_at >= E.entered_at)
    if goal == "replied":
        return exists().where(MoOutcome.mo_id == MoMessage.id, MoMessage.msisdn == E.msisdn,
                              MoOutcome.source == "journey",
                              MoOutcome.source_id.startswith(f"{journey}:", autoescape=True),
                              MoMessage.received_at >= E.entered_at)  # fmt: skip
    raise InputError(f"goal: unknown goal {goal!r} (use replied, ordered, claimed)")


def enrolment_counts(session: Session, *, tenant_id: str | None = None
                     ) -> dict[str, dict[str, int]]:  # fmt: skip
    """Enrolments by journey and state (``active``, ``done``, ``exited``)."""
    E = JourneyEnrolment
    query = select(E.journey, E.state, func.count()).group_by(E.journey, E.state)
    if tenant_id is not None:
        query = query.where(E.tenant_id == tenant_id)
    out: dict[str, dict[str, int]] = {}
    with store_errors("counting the journeys' enrolments"):
        for journey, state, n in session.execute(query):
            out.setdefault(journey, {})[state] = int(n)
    return out


def recent_runs(session: Session, *, since: date | None = None,
                triggers: Sequence[str] | None = None, limit: int | None = None
                ) -> list[JourneyRun]:  # fmt: skip
    """Recorded runs, newest day first (of ``triggers`` when given, from ``since`` on)."""
    R = JourneyRun
    query = select(R).order_by(R.day.desc(), R.id)
    if since is not None:
        query = query.where(R.day >= since)
    if triggers is not None:
        query = query.where(R.trigger.in_(list(triggers)))
    if limit is not None:
        query = query.limit(limit)
    with store_errors("reading the journey runs"):
        return list(session.scalars(query))


def last_runs(session: Session, *, triggers: Sequence[str]) -> dict[str, JourneyRun]:
    """The latest day's run of each of ``triggers`` that ran, by trigger."""
    R = JourneyRun
    latest = (select(R.trigger, func.max(R.day).label("day")).where(R.trigger.in_(list(triggers)))
              .group_by(R.trigger).subquery())  # fmt: skip
    query = select(R).join(latest, (R.trigger == latest.c.trigger) & (R.day == latest.c.day))
    with store_errors("reading the journeys' last runs"):
        return {run.trigger: run for run in session.scalars(query)}


def run_row(run: JourneyRun) -> dict[str, Any]:
    """A run as ``jingxin journeys runs --json`` prints it."""
    return {"day": run.day.isoformat(), "trigger": run.trigger, "state": run.state,
            "candidates": run.candidates, "queued": run.queued, "deferred": run.deferred,
            "duplicates": run.duplicates, "rejected": run.rejected,
            "skipped": dict(run.skipped or {}), "detail": run.detail,
            "started_at": run.started_at.isoformat(timespec="seconds"),
            "finished_at": (run.finished_at.isoformat(timespec="seconds")
                            if run.finished_at else None)}  # fmt: skip
