"""How a multi-step journey is doing: where its enrolments are, and whether the treated
converted more than the hold-out group (``jingxin flow status``).

A goal is ``ordered`` (a placed hall order), ``claimed`` (a gift claim) or ``replied`` (an
MO attributed to a message of the journey) after the subscriber entered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, exists, func, select

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import (
    GiftClaim,
    HallOrder,
    JourneyEnrolment,
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


def journey_status(store: Store, journey: str, *, goal: str = "ordered") -> JourneyStatus:
    """Enrolments of ``journey`` by step, state and outcome, and the conversion (``goal``
    done after entering) of the treated and the hold-out group."""
    E = JourneyEnrolment
    converted = func.sum(case((_converted(goal, journey), 1), else_=0))
    with store_errors(f"reading the status of journey {journey}"), store.transaction() as s:
        positions = [tuple(r) for r in s.execute(
            select(E.step, E.state, E.outcome, func.count()).where(E.journey == journey)
            .group_by(E.step, E.state, E.outcome).order_by(E.state, E.step, E.outcome))]  # fmt: skip
        groups = {bool(held): Group(int(n), int(c or 0)) for held, n, c in s.execute(
            select(E.holdout, func.count(), converted).where(E.journey == journey)
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
