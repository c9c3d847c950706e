"""Multi-step journeys in the store: subscribers enrolled, then advanced step by step.

An enrolment (``journey_enrolments``) is where one subscriber is in one journey: the step,
when it is next due, whether they are held out, and a context - their template variables,
how often each step was visited, and the anchor (when the last message went, or for the
hold-out would have gone) that branch windows count from. All of it is in the store, so a
restarted process, or another machine, carries on where the last one stopped.

Crash-safety contract
---------------------
:func:`advance` works a batch of due enrolments at a time: the batch's messages go to the
delivery entry in ONE transaction (:func:`~jingxin.dispatch.deliver.deliver_many`), then
the batch's events and new positions are written in ONE more. A crash between the two
runs those steps again: the message key ``journey:<journey>:<enrolment>:<step>`` makes
the delivery entry answer ``duplicate`` with the first message's id, and the event
(unique per enrolment, step and kind) is recorded once. A position only moves from the
step it was read at, so two advancing processes never move one subscriber twice.

The hold-out group walks the same steps and is looked at the same way (orders and gift
claims count for it as for the others); its sends record ``held`` and send nothing, so it
never ``replied`` to a journey message.

Hold-out: who is held out is decided at enrolment, before anything is sent, by
:func:`jingxin.analytics.assign.assign` in experiment ``journey:<name>`` (a hash of the
number: the same side on every entry and every restart) with the journey's share
(:meth:`~jingxin.journeys.flow.Flow.holdout_share`). A journey with a hold-out records
each enrolment's arm (``main`` or ``holdout``) in ``experiment_assignments``, one bulk
idempotent insert per chunk, just before the chunk's enrolments (a crash between the two
is healed by enrolling again: the assignments are recorded once); its treated sends carry
``arm="main"``. A subscriber keeps the arm first recorded even if the share is changed
later (the enrolment's own ``holdout`` flag follows the share of the day it entered).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import (
    GiftClaim,
    HallOrder,
    JourneyEnrolment,
    JourneyEvent,
    JourneyRun,
    MoMessage,
    MoOutcome,
)
from jingxin.dispatch.deliver import Delivered, Delivery, DeliveryContext, deliver_many, deliver_one
from jingxin.errors import InputError
from jingxin.journeys.flow import Branch, Exit, Flow, Send, Wait, step_key

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.data.warehouse.connection import Warehouse

log = logging.getLogger("jingxin.journeys")

BATCH = 200  # enrolments per delivery batch (deliver_many is for tens to a few hundred)
RECHECK = timedelta(minutes=15)  # an open branch looks for events again this often
BLOCKED_RETRY = timedelta(hours=1)  # a send whose template is not approved waits this long
NOT_VARIABLES = {"msisdn", "subscriber_id", "template", "category", "wanted_at",
                 "idempotency_key"}  # fmt: skip
_ENROLMENTS = JourneyEnrolment.__table__
_EVENTS = JourneyEvent.__table__


def in_holdout(msisdn: str, journey: str, share: float) -> bool:
    """Whether ``msisdn`` is held out of ``journey``: a hash of both (experiment
    ``journey:<name>``), so the groups stay the same across restarts and re-enrolments,
    and differ between journeys."""
    from jingxin.analytics.assign import HOLDOUT, assign_one

    return share > 0 and assign_one(msisdn, experiment=f"journey:{journey}",
                                    holdout=share) == HOLDOUT  # fmt: skip


# ----------------------------------------------------------------------------- enrolment


@dataclass(frozen=True)
class Enrolled:
    """What :func:`enrol` made of its candidates."""

    candidates: int
    enrolled: int
    holdout: int  # of those enrolled
    already: int  # in this journey under this entry key before
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> candidates


def enrol(store: Store, flow: Flow, candidates: pa.Table | Sequence[str], *, entry_key: str,
          now: datetime, chunk: int = 1000,
          default_holdout: float | None = None) -> Enrolled:  # fmt: skip
    """Enrol ``candidates`` (numbers, or a table with ``msisdn`` and one column per
    template variable) in ``flow`` at its first step, once per (number, ``entry_key``).
    Hold-out members are enrolled too, flagged ``holdout`` (module docstring);
    ``default_holdout`` is ``[analytics] holdout`` (None: its shipped default). A number
    that does not normalise is skipped with its reason."""
    from jingxin.analytics.assign import HOLDOUT, assign
    from jingxin.data.msisdn import normalise_msisdns

    table = candidates if isinstance(candidates, pa.Table) else pa.table(
        {"msisdn": pa.array(list(candidates), pa.string())})
    if "msisdn" not in table.column_names:
        raise InputError(f"journey {flow.name}: the candidates have no msisdn column")
    numbers = normalise_msisdns(table["msisdn"])
    names = [c for c in table.column_names if c not in NOT_VARIABLES]
    values = table.select(names).to_pylist()
    ids = table["subscriber_id"].to_pylist() if "subscriber_id" in table.column_names else None
    share = flow.holdout_share(_default_holdout() if default_holdout is None else default_holdout)
    e164 = numbers.e164.to_pylist()
    arms = (assign(e164, experiment=flow.experiment, holdout=share).to_pylist() if share > 0
            else [None] * len(e164))  # fmt: skip
    rows, skipped, holdout = [], Counter(), 0
    for i, msisdn in enumerate(e164):
        if msisdn is None:
            skipped["invalid_msisdn"] += 1
            continue
        held = arms[i] == HOLDOUT
        context: dict[str, Any] = {"vars": _plain(values[i])}
        if arms[i] is not None:
            context["arm"] = arms[i]
        start = _arrive(flow, flow.first.id, now=now, context=context,
                        came_from=flow.first.id)  # fmt: skip
        rows.append({"journey": flow.name, "msisdn": msisdn, "tenant_id": flow.tenant,
                     "subscriber_id": ids[i] if ids else None, "entry_key": entry_key,
                     "holdout": held, "step": start.step, "state": start.state,
                     "next_at": start.next_at, "outcome": start.outcome,
                     "context": start.context, "entered_at": now, "updated_at": now})  # fmt: skip
    enrolled = 0
    with store_errors(f"enrolling {len(rows)} subscribers in journey {flow.name}"):
        for at in range(0, len(rows), chunk):
            if share > 0:  # assigned before anything is sent (module docstring)
                _record_arms(store, flow, rows[at:at + chunk], now=now)
            with store.transaction() as session:
                made = _insert_new(session, _ENROLMENTS, rows[at:at + chunk],
                                   ("journey", "msisdn", "entry_key"))  # fmt: skip
                for _, held in made:
                    enrolled += 1
                    holdout += bool(held)
    return Enrolled(candidates=table.num_rows, enrolled=enrolled, holdout=holdout,
                    already=len(rows) - enrolled, skipped=skipped)  # fmt: skip


def _default_holdout() -> float:
    from jingxin.config import AnalyticsSettings

    return AnalyticsSettings().holdout


def _record_arms(store: Store, flow: Flow, rows: list[dict], *, now: datetime) -> None:
    from jingxin.analytics.assign import record_assignments

    record_assignments(store, experiment=flow.experiment, tenant_id=flow.tenant,
                       msisdns=[r["msisdn"] for r in rows],
                       arms=[r["context"]["arm"] for r in rows], at=now)  # fmt: skip


def enrol_from_trigger(store: Store, flow: Flow, *, warehouse: Warehouse, settings: Settings,
                       day: date, now: datetime, trigger: str | None = None) -> Enrolled:  # fmt: skip
    """Enrol the day's candidates of ``trigger`` (default: the journey's entry trigger),
    entry key the day, and record it as the day's ``flow:<name>`` run, so the scheduler
    enrols each day once."""
    from jingxin.analytics.holdout import default_share
    from jingxin.journeys.trigger import TriggerContext
    from jingxin.journeys.triggers import trigger as named

    name = trigger or flow.entry.trigger
    if name is None:
        raise InputError(f"journey {flow.name}: its entry is an audience file, not a trigger")
    share = default_share(settings)  # checked before the trigger's work
    output = named(name).candidates(TriggerContext(warehouse=warehouse, day=day,
                                                   settings=settings, store=store))  # fmt: skip
    result = enrol(store, flow, output.candidates, entry_key=day.isoformat(), now=now,
                   default_holdout=share)  # fmt: skip
    skipped = dict(output.skipped + result.skipped)
    run = {"trigger": flow.run_name, "day": day, "state": "done", "candidates": result.candidates,
           "queued": result.enrolled, "duplicates": result.already, "skipped": skipped,
           "detail": output.warning, "started_at": now, "finished_at": now}  # fmt: skip
    with store_errors(f"recording the enrolment of {flow.name} on {day}"), store.transaction() as s:
        dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(JourneyRun.__table__).values(**run)
        s.execute(statement.on_conflict_do_update(index_elements=["trigger", "day"], set_={
            k: statement.excluded[k] for k in run if k not in ("trigger", "day", "started_at")}))
    return result


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Template variables as the context's JSON keeps them (dates as ISO text, which the
    template's declared types read back)."""
    out = {}
    for name, value in values.items():
        if isinstance(value, date | datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        if value is not None:
            out[name] = value
    return out


def _insert_new(session: Any, table: Any, rows: list[dict], key: tuple[str, ...]) -> Any:
    """The (id, holdout) of each of ``rows`` inserted; one already there under ``key`` is
    left alone (INSERT ... ON CONFLICT DO NOTHING RETURNING, one statement for all)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (dialect.insert(table).on_conflict_do_nothing(index_elements=list(key))
                 .returning(table.c.id, table.c.holdout))  # fmt: skip
    return session.execute(statement, rows) if rows else []


# ----------------------------------------------------------------------------- positions


@dataclass(frozen=True, slots=True)
class _Position:
    """Where an enrolment goes: the step, state, when due, how it ended, its context."""

    step: str
    state: str
    next_at: datetime | None
    outcome: str | None
    context: dict[str, Any]
    event: tuple[str, str, str | None] | None = None  # (step key, kind, detail) on arrival


def _arrive(flow: Flow, target: str | None, *, now: datetime, context: Mapping[str, Any],
            came_from: str) -> _Position:  # fmt: skip
    """The position of arriving at ``target`` now (None: the journey is complete). A wait
    is due when it ends; an exit ends the journey on arrival; the rest are due at once."""
    if target is None:
        return _Position(came_from, "done", None, "completed", dict(context))
    step = flow.step(target)
    visits = {**context.get("visits", {})}
    visits[target] = visits.get(target, 0) + 1
    context = {**context, "visits": visits}
    if isinstance(step, Exit):
        return _Position(step.id, "done", None, step.outcome, context,
                         (step_key(step.id, visits[target]), "exit", step.outcome))  # fmt: skip
    due = now + step.duration if isinstance(step, Wait) else now
    return _Position(target, "active", due, None, context)


@dataclass(frozen=True, slots=True)
class _Due:
    """A due enrolment as read from the store."""

    id: int
    journey: str
    msisdn: str
    holdout: bool
    step: str
    entered_at: datetime
    context: dict[str, Any]

    @property
    def key(self) -> str:
        return step_key(self.step, self.context.get("visits", {}).get(self.step, 1))

    @property
    def anchor(self) -> datetime:
        anchor = self.context.get("anchor")
        return datetime.fromisoformat(anchor) if anchor else self.entered_at


@dataclass(slots=True)
class _Move:
    due: _Due
    position: _Position
    events: list[tuple[str, str, int | None, str | None]]  # (step key, kind, message, detail)
    note: str | None = None  # counted but not an event: "blocked"


def _onward(flow: Flow, row: _Due, target: str | None, *, now: datetime,
            events: list | None = None, context: Mapping[str, Any] | None = None) -> _Move:  # fmt: skip
    position = _arrive(flow, target, now=now, context=context or row.context, came_from=row.step)
    made = list(events or [])
    if position.event is not None:
        made.append((position.event[0], position.event[1], None, position.event[2]))
    return _Move(row, position, made)


def _ended(row: _Due, *, state: str, outcome: str, kind: str, detail: str | None) -> _Move:
    return _Move(row, _Position(row.step, state, None, outcome, row.context),
                 [(row.key, kind, None, detail)])  # fmt: skip


# ----------------------------------------------------------------------------- what subscribers did


class Happenings:
    """What the numbers of a batch did since the batch's earliest entry: placed hall
    orders, gift claims, and replies attributed to a journey's message - read in one
    query each, then looked up per enrolment."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str, str], list[datetime]] = defaultdict(list)

    @classmethod
    def load(cls, session: Any, *, numbers: Iterable[str], since: datetime,
             kinds: set[str]) -> Happenings:  # fmt: skip
        found, numbers = cls(), sorted(set(numbers))
        if not numbers:
            return found
        if "ordered" in kinds:
            for msisdn, at in session.execute(select(HallOrder.msisdn, HallOrder.created_at).where(
                    HallOrder.msisdn.in_(numbers), HallOrder.state == "placed",
                    HallOrder.created_at >= since)):  # fmt: skip
                found.times["ordered", "", msisdn].append(at)
        if "claimed" in kinds:
            for msisdn, at in session.execute(select(GiftClaim.msisdn, GiftClaim.claimed_at).where(
                    GiftClaim.msisdn.in_(numbers), GiftClaim.claimed_at >= since)):  # fmt: skip
                found.times["claimed", "", msisdn].append(at)
        if "replied" in kinds:
            replies = (select(MoMessage.msisdn, MoMessage.received_at, MoOutcome.source_id)
                       .join(MoMessage, MoMessage.id == MoOutcome.mo_id)
                       .where(MoOutcome.source == "journey", MoMessage.msisdn.in_(numbers),
                              MoMessage.received_at >= since))  # fmt: skip
            for msisdn, at, source_id in session.execute(replies):
                journey = (source_id or "").partition(":")[0]
                found.times["replied", journey, msisdn].append(at)
        return found

    def first(self, kind: str, *, journey: str, msisdn: str, start: datetime,
              end: datetime) -> datetime | None:  # fmt: skip
        """The first time ``msisdn`` did ``kind`` in [start, end] (a reply: to ``journey``)."""
        times = self.times.get((kind, journey if kind == "replied" else "", msisdn), ())
        return min((t for t in times if start <= t <= end), default=None)


# ----------------------------------------------------------------------------- advancing


def advance(store: Store, flows: Iterable[Flow], *, now: datetime, settings: Settings | None = None,
            context: DeliveryContext | None = None, batch: int = BATCH) -> Counter[str]:  # fmt: skip
    """Run every due step (``next_at <= now``) of the active enrolments of ``flows``, batch
    by batch, until none is due; the counts of what happened (events by kind, ``done``,
    ``exited``, ``blocked``). Steps reached on the way that are due at once (a send after
    a send, a branch after a send) run in the same call."""
    flows = {flow.name: flow for flow in flows}
    if context is None:
        context = DeliveryContext.from_settings(settings) if settings else DeliveryContext()
    counts: Counter[str] = Counter()
    last: list[tuple] | None = None
    while flows:
        due = _due(store, list(flows), now=now, batch=batch)
        seen = [(r.id, r.step, r.key) for r in due]
        if not due or seen == last:  # nothing moved: another process holds these steps
            break
        last = seen
        moves = _decide(store, flows, due, now=now, context=context)
        _record(store, moves, now=now, counts=counts)
    return counts


def _due(store: Store, journeys: list[str], *, now: datetime, batch: int) -> list[_Due]:
    E = JourneyEnrolment
    query = (select(E.id, E.journey, E.msisdn, E.holdout, E.step, E.entered_at, E.context)
             .where(E.state == "active", E.next_at <= now, E.journey.in_(journeys))
             .order_by(E.next_at, E.id).limit(batch))  # fmt: skip
    with store_errors("reading the due journey steps"), store.transaction() as session:
        return [_Due(*row[:6], dict(row[6] or {})) for row in session.execute(query)]


def _decide(store: Store, flows: Mapping[str, Flow], due: list[_Due], *, now: datetime,
            context: DeliveryContext) -> list[_Move]:  # fmt: skip
    kinds = {kind for name in {r.journey for r in due} for kind in _kinds(flows[name])}
    with store_errors("reading what the journeys' subscribers did"), store.transaction() as s:
        seen = Happenings.load(s, numbers=(r.msisdn for r in due),
                               since=min(r.entered_at for r in due), kinds=kinds)  # fmt: skip
    moves, sends = [], []
    for row in due:
        flow = flows[row.journey]
        step = flow.step(row.step)
        left = _exit_hit(flow, row, seen, now)
        if step is None:
            moves.append(_ended(row, state="exited", outcome="failed", kind="failed",
                                detail=f"step {row.step!r} is no longer in the journey"))  # fmt: skip
        elif left is not None:
            moves.append(_ended(row, state="exited", outcome=left, kind="exited", detail=left))
        elif isinstance(step, Send) and row.holdout:
            moves.append(_after_send(flow, row, step, now=now, kind="held"))
        elif isinstance(step, Send):
            sends.append((flow, row, step))
        elif isinstance(step, Wait):
            moves.append(_onward(flow, row, flow.after(step), now=now))
        elif isinstance(step, Branch):
            moves.append(_branch(flow, row, step, seen, now=now))
        else:  # an exit left active (written by an older version): end it now
            moves.append(_ended(row, state="done", outcome=step.outcome, kind="exit",
                                detail=step.outcome))  # fmt: skip
    return moves + _send_all(store, sends, now=now, context=context)


def _kinds(flow: Flow) -> set[str]:
    rules = (r.event for s in flow.steps if isinstance(s, Branch) for r in s.rules)
    return ({*flow.exit_on, *rules} - {"none"})


def _exit_hit(flow: Flow, row: _Due, seen: Happenings, now: datetime) -> str | None:
    """The first exit condition that happened since the subscriber entered, if any."""
    for kind in flow.exit_on:
        if seen.first(kind, journey=flow.name, msisdn=row.msisdn, start=row.entered_at, end=now):
            return kind
    return None


def _branch(flow: Flow, row: _Due, step: Branch, seen: Happenings, *, now: datetime) -> _Move:
    """The first rule whose event happened within its window after the anchor; else the
    first ``none`` whose window passed; else, all windows passed, the default; else the
    branch stays open and looks again."""
    anchor = row.anchor
    for rule in step.rules:
        if rule.event == "none":
            continue
        at = seen.first(rule.event, journey=flow.name, msisdn=row.msisdn, start=anchor,
                        end=min(now, anchor + rule.within))  # fmt: skip
        if at is not None:
            return _onward(flow, row, rule.goto, now=now,
                           events=[(row.key, rule.event, None, at.isoformat())])  # fmt: skip
    for rule in step.rules:
        if rule.event == "none" and now >= anchor + rule.within:
            return _onward(flow, row, rule.goto, now=now, events=[(row.key, "none", None, None)])
    if now >= anchor + step.deadline:
        return _onward(flow, row, step.default, now=now, events=[(row.key, "default", None, None)])
    ends = [anchor + rule.within for rule in step.rules if anchor + rule.within > now]
    return _Move(row, _Position(row.step, "active", min([now + RECHECK, *ends]), None,
                                row.context), [])  # fmt: skip


def _after_send(flow: Flow, row: _Due, step: Send, *, now: datetime, kind: str,
                message_id: int | None = None, detail: str | None = None) -> _Move:  # fmt: skip
    """On from a send; its time is the anchor later branches count from."""
    context = {**row.context, "anchor": now.isoformat()}
    return _onward(flow, row, flow.after(step), now=now, context=context,
                   events=[(row.key, kind, message_id, detail)])  # fmt: skip


def _send_all(store: Store, sends: list[tuple[Flow, _Due, Send]], *, now: datetime,
              context: DeliveryContext) -> list[_Move]:  # fmt: skip
    """The batch's messages through the delivery entry, one transaction for all of them
    (one at a time only when one of them is bad input, so the others still go)."""
    moves, ready = [], []
    for flow, row, step in sends:
        try:
            declared = context.approved(store, tenant_id=flow.tenant, code=step.template)
        except InputError as exc:  # withdrawn or never approved: wait for an approval
            log.warning("journey %s, step %s: %s; retried in %s", flow.name, step.id, exc,
                        BLOCKED_RETRY)  # fmt: skip
            moves.append(_Move(row, _Position(row.step, "active", now + BLOCKED_RETRY, None,
                                              row.context), [], note="blocked"))  # fmt: skip
            continue
        values = {**row.context.get("vars", {}), **step.variables}
        variables = {k: v for k, v in values.items() if k in declared.compiled.variables}
        ready.append((flow, row, step, Delivery(
            msisdn=row.msisdn, source="journey", source_id=f"{flow.name}:{step.id}",
            idempotency_key=f"journey:{flow.name}:{row.id}:{row.key}", category=flow.category,
            tenant_id=flow.tenant, template=step.template, variables=variables,
            arm=row.context.get("arm"))))  # fmt: skip
    results = _deliver(store, [item[3] for item in ready], now=now, context=context)
    for (flow, row, step, _), result in zip(ready, results, strict=True):
        if isinstance(result, InputError):
            moves.append(_ended(row, state="exited", outcome="failed", kind="failed",
                                detail=str(result)))  # fmt: skip
        elif result.outcome == "rejected":
            moves.append(_after_send(flow, row, step, now=now, kind="rejected",
                                     detail=", ".join(result.reasons)))  # fmt: skip
        else:  # queued, deferred, or the duplicate of a send a crash interrupted
            moves.append(_after_send(flow, row, step, now=now, kind="sent",
                                     message_id=result.message_id, detail=result.outcome))  # fmt: skip
    return moves


def _deliver(store: Store, deliveries: list[Delivery], *, now: datetime,
             context: DeliveryContext) -> list[Delivered | InputError]:  # fmt: skip
    if not deliveries:
        return []
    try:
        return list(deliver_many(store, deliveries=deliveries, context=context, now=now))
    except InputError:
        pass  # one of them is bad input: each alone, so only that one fails
    results: list[Delivered | InputError] = []
    for delivery in deliveries:
        try:
            results.append(deliver_one(store, delivery=delivery, context=context, now=now))
        except InputError as exc:
            results.append(exc)
    return results


_MOVE = (update(_ENROLMENTS)
         .where(_ENROLMENTS.c.id == bindparam("b_id"), _ENROLMENTS.c.step == bindparam("b_step"),
                _ENROLMENTS.c.state == "active")
         .values(step=bindparam("n_step"), state=bindparam("n_state"),
                 next_at=bindparam("n_next", type_=_ENROLMENTS.c.next_at.type),
                 outcome=bindparam("n_outcome"),
                 context=bindparam("n_context", type_=_ENROLMENTS.c.context.type),
                 updated_at=bindparam("n_at", type_=_ENROLMENTS.c.updated_at.type)))  # fmt: skip


def _record(store: Store, moves: list[_Move], *, now: datetime, counts: Counter[str]) -> None:
    """The batch's events (each once) and new positions, in one transaction."""
    events = [{"enrolment_id": m.due.id, "step": key, "kind": kind, "message_id": message,
               "detail": detail, "at": now}
              for m in moves for key, kind, message, detail in m.events]  # fmt: skip
    positions = [{"b_id": m.due.id, "b_step": m.due.step, "n_step": m.position.step,
                  "n_state": m.position.state, "n_next": m.position.next_at,
                  "n_outcome": m.position.outcome, "n_context": m.position.context, "n_at": now}
                 for m in moves]  # fmt: skip
    with store_errors(f"recording {len(moves)} journey steps"), store.transaction() as session:
        if events:
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            session.execute(dialect.insert(_EVENTS).on_conflict_do_nothing(
                index_elements=["enrolment_id", "step", "kind"]), events)
        if positions:
            session.execute(_MOVE, positions)
    for move in moves:
        counts.update(kind for _, kind, _, _ in move.events)
        if move.note:
            counts[move.note] += 1
        if move.position.state != "active":
            counts[move.position.state] += 1


__all__ = ["Enrolled", "Happenings", "advance", "enrol", "enrol_from_trigger", "in_holdout"]
