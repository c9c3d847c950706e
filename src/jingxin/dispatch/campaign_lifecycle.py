"""A campaign's lifecycle: its status and counts, pause, resume, cancel, finished.

::

    draft ─(schedule)─► running ─► paused ─► running ...
      │      testing ─► (promote) ─► running       │
      │                      │                    │
      │                      ├─ every message final ─► finished (at the end of the run,
      │                      │                         on status, or by the worker's sweep)
      └──────────────────────┴─ cancel (draft, running, testing or paused) ─► cancelled:
                                  queued messages end rejected/cancelled

A draft (:mod:`jingxin.dispatch.campaign_drafts`) has queued nothing; scheduling runs it
(:func:`jingxin.dispatch.campaign.run_campaign`). A campaign with a test share starts
``testing`` (only the test share is sent) and stays so until ``jingxin campaign promote``
(:mod:`jingxin.dispatch.campaign_promote`) sends the winning arm's template to the rest.
Claims skip paused and cancelled campaigns. Pause, resume or cancel of a finished or
cancelled campaign changes nothing and says so (:class:`Controlled` ``changed`` false); a
move the status does not allow is a :class:`CampaignStateError`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import Campaign, ExperimentAssignment, Message, utc_now
from jingxin.dispatch.campaign_arms import experiment_name
from jingxin.errors import InputError, SpecError

OPEN_STATES = ("queued", "submitting", "submitted")
CLOSED = ("finished", "cancelled")


class CampaignStateError(SpecError):
    """A conflict with a campaign's state: resume a cancelled one, schedule one that
    already runs, run a spec that already ran. The CLI shows it as one line; the API
    answers 409."""


def finish_if_final(session, *, campaign_id: int, now: datetime | None = None) -> bool:
    """Mark a running campaign ``finished`` once none of its messages is open (queued,
    submitting or submitted); True if it moved. Called at the end of a run and by status."""
    open_rows = session.scalar(
        select(func.count()).select_from(Message)
        .where(Message.campaign_id == campaign_id, Message.state.in_(OPEN_STATES))
    )  # fmt: skip
    if open_rows:
        return False
    moved = session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.status == "running")
        .values(status="finished", finished_at=now or utc_now())
    )  # fmt: skip
    return bool(moved.rowcount)


def finish_campaigns(store: Store, *, now: datetime | None = None,
                     settled: timedelta = timedelta(seconds=60)) -> list[int]:  # fmt: skip
    """Every running campaign whose messages are all final, marked ``finished`` in one
    ``UPDATE`` (a worker's periodic sweep); returns their ids. A campaign counts only once
    it has a message and started ``settled`` ago, so a run still rendering its first chunk
    is not finished under it (the runner finishes a campaign that queued nothing itself)."""
    now = now or utc_now()
    mine = Message.campaign_id == Campaign.id
    finished = (
        update(Campaign)
        .where(Campaign.status == "running", Campaign.started_at <= now - settled,
               select(Message.id).where(mine).exists(),
               ~select(Message.id).where(mine, Message.state.in_(OPEN_STATES)).exists())
        .values(status="finished", finished_at=now)
        .returning(Campaign.id)
    )  # fmt: skip
    with store_errors("finishing campaigns"), store.engine.begin() as conn:
        return sorted(conn.execute(finished).scalars())


def campaign_status(store: Store, *, campaign_id: int) -> dict[str, Any]:
    """Messages by state, parts and cost; the experiment: numbers held out and, per
    treated arm, numbers assigned and messages queued; the promotion, once made."""
    from jingxin.analytics.assign import HOLDOUT

    with store_errors(f"reading campaign {campaign_id}"), store.transaction() as session:
        if session.get(Campaign, campaign_id) is None:
            raise SpecError(f"no campaign with id {campaign_id}")
        finish_if_final(session, campaign_id=campaign_id)
        campaign = session.get(Campaign, campaign_id)
        rows = session.execute(
            select(Message.state, func.count(), func.sum(Message.parts), func.sum(Message.cost))
            .where(Message.campaign_id == campaign_id).group_by(Message.state)
        ).all()  # fmt: skip
        # Why messages ended without being sent: the campaign's own cancel ('cancelled')
        # and the send-time re-check ('opted_out', 'blacklisted', 'consent_withdrawn').
        stopped = dict(session.execute(
            select(Message.error_code, func.count())
            .where(Message.campaign_id == campaign_id, Message.state == "rejected")
            .group_by(Message.error_code)).all())  # fmt: skip
        held = session.scalar(
            select(func.count()).select_from(ExperimentAssignment)
            .where(ExperimentAssignment.experiment == experiment_name(campaign_id),
                   ExperimentAssignment.arm == HOLDOUT))  # fmt: skip
        name, status, promotion = campaign.name, campaign.status, (campaign.spec or {}).get(
            PROMOTION)  # fmt: skip
    out = {"id": campaign_id, "name": name, "status": status,
           "messages": {state: count for state, count, _, _ in rows},
           "rejected_by": {code or "unknown": n for code, n in stopped.items()},
           "parts": sum(p or 0 for _, _, p, _ in rows),
           "cost": round(sum(c or 0.0 for _, _, _, c in rows), 4),
           "experiment": experiment_name(campaign_id), "held_out": held or 0,
           "arms": arm_counts(store, campaign_id=campaign_id)}  # fmt: skip
    if promotion:
        out["promotion"] = promotion
    return out


# Where the campaign's row keeps its promotion (the arm sent to the rest, when, on which
# metric): beside the spec it ran, in the same JSON document.
PROMOTION = "promotion"
PAUSABLE = ("running", "testing")


ACTIONS = ("pause", "resume", "cancel")


@dataclass(frozen=True)
class Controlled:
    """What a pause, resume or cancel did: the status before and after, whether anything
    changed (a finished or cancelled campaign is left as it is), and the line to show."""

    campaign_id: int
    action: str
    before: str
    status: str
    changed: bool
    line: str


def control(store: Store, *, campaign_id: int, action: str, now: datetime | None = None) -> str:
    """Pause, resume or cancel; returns the one line to show. Cancel ends queued messages.
    A finished or cancelled campaign is left as it is, and the line says so. A paused
    campaign still waiting for its promotion resumes ``testing``."""
    if action not in ACTIONS:
        raise InputError(f"unknown action {action!r} (pause, resume or cancel)")
    with store.transaction() as session:
        return apply_control(session, campaign_id=campaign_id, action=action, now=now).line


def apply_control(session, *, campaign_id: int, action: str,
                  now: datetime | None = None) -> Controlled:  # fmt: skip
    """:func:`control` in the caller's transaction (the API audits in the same one). A
    move the status does not allow (resume a running campaign, pause a draft) is a
    :class:`CampaignStateError`."""
    if action not in ACTIONS:
        raise InputError(f"unknown action {action!r} (pause, resume or cancel)")
    now = now or utc_now()
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise SpecError(f"no campaign with id {campaign_id}")
    if campaign.status == "running":
        finish_if_final(session, campaign_id=campaign_id, now=now)
        session.refresh(campaign)
    before = campaign.status
    if campaign.status in CLOSED:
        return Controlled(campaign_id, action, before, before, False,
                          f"campaign {campaign_id} is {campaign.status}: {action} changes "
                          "nothing")  # fmt: skip
    if action == "pause" and campaign.status not in PAUSABLE:
        raise CampaignStateError(f"campaign {campaign_id} is {campaign.status}; pause needs "
                                 "running or testing")  # fmt: skip
    if action == "resume" and campaign.status != "paused":
        raise CampaignStateError(f"campaign {campaign_id} is {campaign.status}; resume needs "
                                 "paused")  # fmt: skip
    status = {"pause": "paused", "cancel": "cancelled",
              "resume": "testing" if awaiting_promotion(campaign) else "running"}[action]  # fmt: skip
    campaign.status = status
    if action == "cancel":
        campaign.finished_at = now
        session.execute(
            update(Message)
            .where(Message.campaign_id == campaign_id, Message.state == "queued")
            .values(state="rejected", error_code="cancelled", finished_at=now, updated_at=now)
        )  # fmt: skip
    session.flush()
    return Controlled(campaign_id, action, before, status, True,
                      f"campaign {campaign_id}: {status}")  # fmt: skip


def awaiting_promotion(campaign: Campaign) -> bool:
    """A campaign with a test share whose promotion has not been completed."""
    spec = campaign.spec or {}
    test_share = (spec.get("experiment") or {}).get("test_share")
    return test_share is not None and not (spec.get(PROMOTION) or {}).get("done")


def arm_counts(store: Store, *, campaign_id: int,
               assigned: Mapping[str, int] | None = None) -> dict[str, dict[str, int]]:  # fmt: skip
    """Per treated arm: numbers ``assigned`` (from ``assigned``, else the store) and
    messages ``queued`` (written to the outbox, whatever their state since)."""
    from jingxin.analytics.assign import HOLDOUT

    with store_errors(f"counting the arms of campaign {campaign_id}"), \
            store.sessions() as session:  # fmt: skip
        if assigned is None:
            assigned = dict(session.execute(
                select(ExperimentAssignment.arm, func.count())
                .where(ExperimentAssignment.experiment == experiment_name(campaign_id))
                .group_by(ExperimentAssignment.arm)).all())  # fmt: skip
        queued = Counter(dict(session.execute(
            select(Message.arm, func.count()).where(Message.campaign_id == campaign_id)
            .group_by(Message.arm)).all()))  # fmt: skip
    names = sorted(set(assigned) | {a for a in queued if a is not None}, key=str)
    return {name: {"assigned": int(assigned.get(name, 0)), "queued": int(queued.get(name, 0))}
            for name in names if name != HOLDOUT}  # fmt: skip
