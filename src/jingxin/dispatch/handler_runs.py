"""One run of the MO handlers over what is pending (:func:`jingxin.dispatch.handlers.run_pending`).

A run works on one BATCH of up to ``limit`` MO, in id order:

1. one query takes the pending MO (no ``mo_outcomes`` row) and attributes them all
   (:func:`~jingxin.dispatch.attribution.pending_attributed`); it also clears the invalid
   marks of their senders (:func:`~jingxin.dispatch.invalid.seen_alive`: a number that
   writes to us is in service);
2. each handler gets its MO of the batch at once (:func:`~jingxin.dispatch.handlers.handle_all`:
   ``handle_batch``, e.g. one insert of the new opt-outs), each in its own transactions;
3. the replies the handlers asked for go out through one bulk delivery
   (:func:`~jingxin.dispatch.reply.send_replies`, keys ``inbox:<mo_id>:reply``);
4. one insert records every outcome, ``ON CONFLICT (mo_id) DO NOTHING``.

Crash-safety contract: effects and replies commit before the outcomes do, so a crash in
between leaves the whole batch pending and the next run handles it again - handlers are
idempotent and the replies come back as ``duplicate``: nothing is applied or sent twice.
SQLite allows one writer at a time, which is why no transaction is held open across a
handler. An exception anywhere in steps 2-4 (a handler that raises, a number that does
not normalise, an outcome that cannot be inserted) drops the batch back to one MO at a
time: each handler again (idempotent), its reply through the single delivery entry, its
outcome alone - so the bad MO is recorded ``failed`` with the error and the rest are
handled. A store that cannot be read or written ends the run with
:class:`~jingxin.errors.StoreError` and leaves the rest pending for the next one.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, bindparam, delete, literal_column, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from jingxin.data.msisdn import e164_of_few
from jingxin.data.store.bulk import probe
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.frozen import Frozen
from jingxin.data.store.models import (
    MoMessage,
    MoOutcome,
    NumberFailure,
    SubscriberState,
    utc_now,
)
from jingxin.data.store.models.base import UtcDateTime
from jingxin.data.validate import valid_msisdn
from jingxin.dispatch.attribution import pending_attributed, within
from jingxin.dispatch.handlers import (
    HandlerContext,
    HandlerRegistry,
    HandlerResult,
    InboundMessage,
    MoHandler,
    handle_all,
)
from jingxin.dispatch.invalid import alive_updates, seen_alive
from jingxin.dispatch.reply import ReplyRequest
from jingxin.errors import InputError, StoreError
from jingxin.logs import mask

log = logging.getLogger(__name__)

# An error longer than this is cut in ``detail``: enough to see what went wrong.
MAX_DETAIL = 1000
NO_HANDLER = HandlerResult(detail="no handler for this service number and text")


@dataclass
class RunTally:
    """What one run did: outcomes recorded, MO another runner recorded first, and time;
    ``fallbacks`` counts batches that had to be handled one MO at a time."""

    handled: int = 0
    no_handler: int = 0
    failed: int = 0
    raced: int = 0
    fallbacks: int = 0
    seconds: float = 0.0
    by_handler: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.handled + self.no_handler + self.failed + self.raced

    def count(self, done: Done, *, recorded: bool) -> None:
        if not recorded:
            self.raced += 1
            return
        setattr(self, done.outcome, getattr(self, done.outcome) + 1)
        if done.handler:
            self.by_handler[done.handler] = self.by_handler.get(done.handler, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"handled": self.handled, "no_handler": self.no_handler, "failed": self.failed,
                "raced": self.raced, "fallbacks": self.fallbacks,
                "by_handler": dict(self.by_handler), "seconds": round(self.seconds, 3)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Done:
    """What became of one MO: the handler's name, the outcome and the result."""

    mo: InboundMessage
    handler: str | None
    outcome: str
    result: HandlerResult


def run_batch(store: Store, *, registry: HandlerRegistry, context: HandlerContext,
              limit: int, ids: Sequence[int] | None = None) -> RunTally:  # fmt: skip
    """Handle up to ``limit`` pending MO with ``context`` bound to the run's store and now
    (with ``ids``: only those; the pending cursor then stays where it is, since MO below
    them may still wait for another worker)."""
    with store.pinned():  # one pooled connection for the batch's statements
        return _run_batch(store, registry=registry, context=context, limit=limit, ids=ids)


def _run_batch(store: Store, *, registry: HandlerRegistry, context: HandlerContext,
               limit: int, ids: Sequence[int] | None) -> RunTally:  # fmt: skip
    began = time.perf_counter()
    tally = RunTally()
    everyone = _pending(store, context=context, limit=limit, ids=ids)
    at = context.now or utc_now()
    if everyone:
        mos, unreachable = _reachable(everyone, registry=registry)
        try:
            done = unreachable + (_handle_batch(mos, registry=registry, context=context) if mos else [])
            recorded = _record_all(store, done=done, at=at)
        except StoreError:
            raise  # the store is down, not one MO bad: the whole batch stays pending
        except Exception as exc:  # noqa: BLE001 - one bad MO must not stop the batch
            log.warning("a batch of %d MO failed (%s: %s); handling them one at a time",
                        len(mos), type(exc).__name__, exc)  # fmt: skip
            tally.fallbacks += 1
            done = unreachable + [_one(mo, registry=registry, context=context) for mo in mos]
            recorded = {d.mo.id for d in done if _record(store, mo=d.mo, handler=d.handler,
                                                          outcome=d.outcome, result=d.result,
                                                          at=at)}  # fmt: skip
        for item in done:
            tally.count(item, recorded=item.mo.id in recorded)
        if ids is None:
            context.cursor.advance(max(mo.id for mo in everyone))
    tally.seconds = time.perf_counter() - began
    return tally


def _reachable(mos: list[InboundMessage], *, registry: HandlerRegistry,
               ) -> tuple[list[InboundMessage], list[Done]]:  # fmt: skip
    """The MO to handle, and ``failed`` for each one a handler would take from a sender that
    is no number the platform serves (the inbox keeps such a sender as received: ``12345``,
    ``abc``, a foreign one): no reply can reach it and no refusal can be recorded for it.
    Told apart here, one check for the batch, rather than by the batch failing on the
    first of them and falling back to one MO at a time."""
    senders = e164_of_few([mo.msisdn for mo in mos])
    if None not in senders:
        return mos, []
    ok: list[InboundMessage] = []
    unreachable: list[Done] = []
    for e164, mo in zip(senders, mos, strict=True):
        handler = registry.match(mo) if e164 is None else None
        if handler is None:  # (no handler: recorded no_handler by the batch, as any other)
            ok.append(mo)
            continue
        detail = (f"{_invalid(mo.msisdn)}: not handled - no reply can reach it and no refusal "
                  "can be recorded for it")
        unreachable.append(Done(mo, handler.name, "failed", HandlerResult(detail=detail[:MAX_DETAIL])))
    return ok, unreachable


def _invalid(msisdn: str) -> str:
    """Why ``msisdn`` is no number the platform serves, as the delivery entry would say it."""
    try:
        valid_msisdn(msisdn, field="sender")
    except InputError as exc:
        return str(exc)
    return f"sender: {msisdn!r} is no number this platform serves"  # (the same rules: not reached)


def _handle_batch(mos: list[InboundMessage], *, registry: HandlerRegistry,
                  context: HandlerContext) -> list[Done]:  # fmt: skip
    """Every MO of the batch through its handler (all of a handler's at once), then all
    the replies they asked for in one go. Raises whatever a handler or the delivery does."""
    matched = [(mo, registry.match(mo)) for mo in mos]
    groups: dict[int, tuple[MoHandler, list[InboundMessage]]] = {}
    for mo, handler in matched:
        if handler is not None:
            groups.setdefault(id(handler), (handler, []))[1].append(mo)
    results: dict[int, HandlerResult] = {}
    for handler, group in groups.values():
        results.update(zip((mo.id for mo in group),
                           handle_all(handler, group, context=context), strict=True))  # fmt: skip
    wanted = [mo for mo, _ in matched if mo.id in results and results[mo.id].reply is not None]
    sent = context.send_replies([_request(mo, results[mo.id]) for mo in wanted])
    done = []
    for mo, handler in matched:
        if handler is None:
            done.append(Done(mo, None, "no_handler", NO_HANDLER))
            continue
        result = results[mo.id]
        if result.reply is not None:
            result = result.replied(sent[mo.id])
        done.append(Done(mo, handler.name, "handled", result))
    return done


def _one(mo: InboundMessage, *, registry: HandlerRegistry, context: HandlerContext) -> Done:
    """One MO alone: its handler, then its reply through the single delivery entry; an
    exception is the outcome ``failed`` with the error."""
    handler = registry.match(mo)
    if handler is None:
        return Done(mo, None, "no_handler", NO_HANDLER)
    try:
        result = handler.handle(mo, context=context)
        if result.reply is not None:
            result = result.replied(context.send_reply(
                mo, text=result.reply, source=result.reply_source, tenant_id=result.reply_tenant))
        return Done(mo, handler.name, "handled", result)
    except StoreError:
        raise  # a store outage is no verdict on this MO: it stays pending
    except Exception as exc:  # noqa: BLE001 - one bad MO must not stop the inbox
        log.warning("MO %s from %s: handler %s failed: %s", mo.id, mask(mo.msisdn),
                    handler.name, exc, exc_info=True)  # fmt: skip
        detail = f"{type(exc).__name__}: {exc}"
        return Done(mo, handler.name, "failed", HandlerResult(detail=detail[:MAX_DETAIL]))


def _request(mo: InboundMessage, result: HandlerResult) -> ReplyRequest:
    return ReplyRequest(mo_id=mo.id, msisdn=mo.msisdn, service_number=mo.service_number,
                        text=result.reply or "", tenant_id=result.reply_tenant or mo.tenant_id,
                        source=result.reply_source)  # fmt: skip


def _pending(store: Store, *, context: HandlerContext, limit: int,
             ids: Sequence[int] | None = None) -> list[InboundMessage]:  # fmt: skip
    """The next ``limit`` MO without an outcome, oldest first, with their attribution: ONE
    query (:func:`~jingxin.dispatch.attribution.pending_attributed`), on PostgreSQL without
    a transaction around it (one statement sees one snapshot anyway) and built once
    (:func:`_pending_frozen`): only its parameters change from batch to batch."""
    now = context.now or utc_now()
    dialect = store.engine.dialect.name
    with store_errors("reading the pending MO"), store.autocommit() as conn:
        if dialect == "postgresql":
            frozen = _pending_frozen(window=context.window, by_ids=ids is not None,
                                     default_senders=tuple(context.default_senders.items()))  # fmt: skip
            wanted = {"ids": sorted(ids)} if ids is not None else {"start": context.cursor.start()}
            rows = frozen.all(conn, limit=limit, now=now, **wanted)
        else:
            wanted = (MoMessage.id > context.cursor.start() if ids is None
                      else MoMessage.id.in_(sorted(ids)))  # fmt: skip
            query, _ = _pending_query(wanted, limit=limit, window=context.window,
                                      default_senders=context.default_senders, dialect=dialect)  # fmt: skip
            rows = conn.execute(query).all()
            seen_alive(conn, msisdns=[row.msisdn for row in rows], now=now)
    return [
        InboundMessage(
            id=row.id, channel=row.channel, msisdn=row.msisdn,
            service_number=row.service_number, text=row.text, received_at=row.received_at,
            coding=row.coding, parts=row.parts, parts_expected=row.parts_expected,
            complete=row.complete, undecodable=row.undecodable,
            attribution=within(row, context.window),
        )  # fmt: skip
        for row in rows
    ]


def _pending_query(wanted: Any, *, limit: Any, window: timedelta, default_senders: Mapping[str, str],
                   dialect: str) -> tuple[Any, Any]:  # fmt: skip
    """The pending read of :func:`_pending` for the MO ``wanted`` selects, and its
    ``pending`` CTE (what PostgreSQL's resets of the senders select from)."""
    pending = (
        select(*MoMessage.__table__.c)
        .outerjoin(MoOutcome, MoOutcome.mo_id == MoMessage.id)
        .where(MoOutcome.id.is_(None), wanted)
        .order_by(MoMessage.id)
        .limit(limit)
    ).cte("pending")
    return pending_attributed(pending, window=window, dialect=dialect,
                              default_senders=default_senders), pending  # fmt: skip


def _pending_probed(*, limit: Any, window: timedelta,
                    default_senders: Mapping[str, str]) -> tuple[Any, Any]:  # fmt: skip
    """PostgreSQL's pending read of the MO ``:ids`` (the worker's own, after each commit):
    each id one probe of ``mo_messages`` and one of ``mo_outcomes`` whatever the planner's
    statistics say (:func:`~jingxin.data.store.bulk.probe`; the outcome's ``NOT EXISTS``
    kept from becoming a join by ``OFFSET 0``). As a semi-join on the array with an outer
    join to the outcomes, the plan PostgreSQL kept was made when ``mo_messages`` held 1,600
    rows and scanned it whole on every batch: 2.4 ms a call, 3 s of a 20-s run at 1,000
    MO/s (``bench mo-inbox --rate 1000``), growing with the inbox."""
    rows, keys = probe(MoMessage.__table__, {"id": bindparam("ids", type_=ARRAY(BigInteger))},
                       name="mo")  # fmt: skip
    handled = (select(MoOutcome.id).where(MoOutcome.mo_id == rows.c.id)
               .offset(literal_column("0")).exists())  # fmt: skip
    pending = (select(*rows.c).select_from(keys).where(~handled)
               .order_by(rows.c.id).limit(limit)).cte("pending")  # fmt: skip
    return pending_attributed(pending, window=window, dialect="postgresql",
                              default_senders=default_senders), pending  # fmt: skip


@functools.lru_cache(maxsize=32)
def _pending_frozen(*, window: timedelta, by_ids: bool,
                    default_senders: tuple[tuple[str, str], ...]) -> Frozen:  # fmt: skip
    """PostgreSQL's pending read over the parameters ``ids`` (or ``start``, the cursor),
    ``limit`` and ``now``. The senders wrote to us, so their numbers are in service
    (invalid.seen_alive): before any handler answers, a number marked invalid after
    failed deliveries is cleared, or its answer would be refused - the two resets ride on
    this read as data-modifying WITH parts (SQLite: in the read's transaction)."""

    def build() -> Any:
        limit = bindparam("limit", type_=Integer())
        if by_ids:
            query, pending = _pending_probed(limit=limit, window=window,
                                             default_senders=dict(default_senders))  # fmt: skip
        else:
            query, pending = _pending_query(MoMessage.id > bindparam("start", type_=BigInteger()),
                                            limit=limit, window=window,
                                            default_senders=dict(default_senders),
                                            dialect="postgresql")  # fmt: skip
        senders = select(pending.c.msisdn)
        failures, marks = alive_updates(NumberFailure.msisdn.in_(senders),
                                        SubscriberState.msisdn.in_(senders),
                                        now=bindparam("now", type_=UtcDateTime()))  # fmt: skip
        return query.add_cte(failures.cte("alive_failures"), marks.cte("alive_marks"))

    return Frozen(build)


def _values(done: Done, at: datetime) -> dict[str, Any]:
    mo, result, found = done.mo, done.result, done.mo.attribution
    return {
        "mo_id": mo.id, "handler": done.handler, "outcome": done.outcome,
        "detail": result.detail or None, "tenant_id": mo.tenant_id,
        "reply_message_id": result.reply_message_id,
        "message_id": found.message_id if found else None,
        "campaign_id": found.campaign_id if found else None,
        "source": found.source if found else None,
        "source_id": found.source_id if found else None,
        "arm": found.arm if found else None,
        "handled_at": at,
    }  # fmt: skip


# PostgreSQL: one statement text whatever the batch size (arrays, unnest), so psycopg and
# the server parse and plan it once per connection instead of once per batch size.
_OUTCOME_ARRAYS = (("mo_id", "BIGINT"), ("handler", "TEXT"), ("outcome", "TEXT"),
                   ("detail", "TEXT"), ("tenant_id", "TEXT"), ("reply_message_id", "BIGINT"),
                   ("message_id", "BIGINT"), ("campaign_id", "INTEGER"), ("source", "TEXT"),
                   ("source_id", "TEXT"), ("arm", "TEXT"), ("handled_at", "TIMESTAMPTZ"))  # fmt: skip
_INSERT_PG = text(
    f"INSERT INTO mo_outcomes ({', '.join(c for c, _ in _OUTCOME_ARRAYS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _OUTCOME_ARRAYS)}) "
    "ON CONFLICT (mo_id) DO NOTHING RETURNING mo_id"
)


def _insert(connection, rows: Sequence[dict[str, Any]]) -> set[int]:
    """One INSERT ... ON CONFLICT (mo_id) DO NOTHING RETURNING mo_id for all ``rows``: on
    PostgreSQL over arrays (one statement text for every batch size), on SQLite through
    SQLAlchemy's insertmanyvalues."""
    if connection.dialect.name == "postgresql":
        arrays = {c: [row[c] for row in rows] for c, _ in _OUTCOME_ARRAYS}
        return set(connection.execute(_INSERT_PG, arrays).scalars())
    statement = (sqlite.insert(MoOutcome.__table__)
                 .on_conflict_do_nothing(index_elements=["mo_id"])
                 .returning(MoOutcome.__table__.c.mo_id))  # fmt: skip
    return set(connection.execute(statement, list(rows)).scalars())


def _record_all(store: Store, *, done: Sequence[Done], at: datetime) -> set[int]:
    """Insert the batch's outcome rows at once; the ids recorded (an MO another runner
    recorded first is left out)."""
    with store_errors(f"recording the outcomes of {len(done)} MO"), store.autocommit() as conn:
        return _insert(conn, [_values(d, at) for d in done])


def _record(store: Store, *, mo: InboundMessage, handler: str | None, outcome: str,
            result: HandlerResult, at: datetime) -> bool:  # fmt: skip
    """Insert one outcome row; False if another runner recorded this MO first."""
    values = _values(Done(mo, handler, outcome, result), at)
    with store_errors(f"recording the outcome of MO {mo.id}"), store.autocommit() as conn:
        return bool(_insert(conn, [values]))


def forget_unmatched(store: Store, *, registry: HandlerRegistry, chunk: int = 5000) -> int:
    """Delete the ``no_handler`` outcomes of the MO a handler of ``registry`` now matches,
    so the next run handles them: a word added to the settings since, or a refusal an
    earlier version did not read (``TD.``, ``退订。``, ``TD🙏`` were ``no_handler`` before
    keywords compared without punctuation) - a subscriber's no holds once it is
    understood. Read in chunks of ``chunk`` by id; returns how many."""
    forgotten, after = 0, 0
    while True:
        with store_errors("reading the MO that had no handler"), store.autocommit() as conn:
            rows = conn.execute(
                select(MoMessage.id, MoMessage.channel, MoMessage.msisdn,
                       MoMessage.service_number, MoMessage.text, MoMessage.received_at,
                       MoMessage.undecodable)
                .join(MoOutcome, MoOutcome.mo_id == MoMessage.id)
                .where(MoOutcome.outcome == "no_handler", MoMessage.id > after)
                .order_by(MoMessage.id).limit(chunk)).all()  # fmt: skip
        if not rows:
            return forgotten
        after = rows[-1].id
        matched = [row.id for row in rows if registry.match(InboundMessage(
            id=row.id, channel=row.channel, msisdn=row.msisdn,
            service_number=row.service_number, text=row.text,
            received_at=row.received_at, undecodable=row.undecodable)) is not None]  # fmt: skip
        if matched:
            with store_errors("forgetting the outcomes of MO a handler now matches"), \
                    store.transaction() as session:  # fmt: skip
                done = session.execute(delete(MoOutcome).where(
                    MoOutcome.mo_id.in_(matched), MoOutcome.outcome == "no_handler"))
                forgotten += int(done.rowcount)  # type: ignore[attr-defined]


def forget_failed(store: Store) -> int:
    """Delete the ``failed`` outcomes so the next run handles those MO again (after the
    cause is fixed); returns how many."""
    with store_errors("forgetting the failed MO outcomes"), store.transaction() as session:
        done = session.execute(delete(MoOutcome).where(MoOutcome.outcome == "failed"))
        return int(done.rowcount)  # type: ignore[attr-defined]
