"""The hall's MO handler: reads each MO as a command and answers it (docs/hall.md).

One :class:`HallHandler` serves every hall of the menu file; the inbox registers it once
per hall service number as a catch-all (``default_registry``), so the inbox's keyword
handlers (the unsubscribe words) still win. For a batch of MO it

1. reads the interactions already recorded for these MO and the sessions of their
   senders (:meth:`~jingxin.data.store.engine.Store.reading`: no transaction around two
   reads of rows only this batch's MO write);
2. answers each MO in order: its hall (by service number; the tenant is the hall's, not
   the attribution's), :func:`~jingxin.hall.router.parse`, the command's function (which
   commits its own effects, keyed by the MO), the session moved along in memory - so a
   ``KT`` and its ``Y`` in one batch work;
3. writes, in one transaction (on PostgreSQL one statement), the changed sessions and one
   ``hall_interactions`` row per MO (command, zone, kind, outcome and the reply text).

Crash-safety contract: effects commit (step 2) before the interaction and the session
(step 3), which commit before the inbox records the outcome. A crash anywhere leaves the
MO pending; its re-run finds each effect done by its key (the order's ``request_key``,
the voucher's ``issue_key``, the feedback's ``mo_id``) and answers the same, and an MO
whose interaction is recorded is answered with the stored reply, running nothing. The
reply itself goes out through the runner with key ``inbox:<mo_id>:reply``: once, ever.

The menu is asked for again at each batch when the handler has a ``source``
(:func:`hall_handler`: the menu file with the halls edited over the API,
:class:`~jingxin.hall.menu_edits.MenuSource`), so an edit is answered with from the next
batch without a restart.

One bad MO does not sink the batch: a command that raises gets the reply "系统繁忙" and the
outcome ``error:<Type>`` (logged with the MO id). A :class:`~jingxin.errors.StoreError`
is not a verdict on the MO: it propagates, and the batch stays pending.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from jingxin.config import HallSettings, Settings
from jingxin.data.store.bulk import among, array_values, in_array, unnest_arrays
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.frozen import Frozen, Read, run_reads
from jingxin.data.store.models import HallInteraction, utc_now
from jingxin.dispatch.handlers import (
    HandlerContext,
    HandlerResult,
    InboundMessage,
    readable_text,
)
from jingxin.errors import StoreError
from jingxin.hall.commands import COMMANDS, POINTS, Turn
from jingxin.hall.context import Answer, HallContext, HallRequest
from jingxin.hall.menu import HallMenu, Menu
from jingxin.hall.router import parse
from jingxin.hall.sessions import (
    Key,
    SessionState,
    fresh_session,
    load_sessions,
    save_sessions,
    sessions_read,
    session_arrays,
    session_rows,
    upsert_sql,
)
from jingxin.hall.points import points_read
from jingxin.hall.queries import campaigns_key, campaigns_read
from jingxin.hall.text import normalise
from jingxin.logs import mask

if TYPE_CHECKING:
    from jingxin.hall.menu_edits import MenuSource

log = logging.getLogger(__name__)

REPLY_SOURCE = "hall"
BUSY = "系统繁忙，请稍后再试。"

BossFactory = Callable[[Store], Any]  # a store -> a jingxin.hall.boss.Boss


class HallHandler:
    """Answers the MO to the menu's halls (see the module docstring)."""

    def __init__(self, *, menu: Menu, settings: HallSettings, boss_factory: BossFactory,
                 name: str = "hall", home: Path = Path("."),
                 source: MenuSource | None = None) -> None:  # fmt: skip
        self.menu = menu
        self.source = source  # when given, the menu is asked for again at every batch
        self.settings = settings
        self.home = home
        self.boss_factory = boss_factory
        self.name = name
        self._boss: tuple[Store, Any] | None = None

    def handle(self, mo: InboundMessage, *, context: HandlerContext) -> HandlerResult:
        return self.handle_batch([mo], context=context)[0]

    def handle_batch(self, mos: Sequence[InboundMessage], *,
                     context: HandlerContext) -> list[HandlerResult]:  # fmt: skip
        if self.source is not None:
            self.menu = self.source.current()  # edits made over the API (menu_edits)
        store = context.bound_store()
        run = _Run(store=store, settings=self.settings, boss=_BatchBoss(self._boss_of(store)),
                   now=context.now, delivery=getattr(context.reply, "context", None),
                   home=self.home)  # fmt: skip
        halls = [self.menu.hall_for(mo.service_number) for mo in mos]
        run.senders = tuple(sorted({mo.msisdn for mo, hall in zip(mos, halls, strict=True)
                                    if hall is not None}))  # fmt: skip
        answered, stored = _read(store, run, [mo.id for mo in mos],
                                 {(mo.msisdn, hall.service_number)
                                  for mo, hall in zip(mos, halls, strict=True)
                                  if hall is not None},
                                 [hall for hall in halls if hall is not None])  # fmt: skip
        current: dict[Key, SessionState] = dict(stored)
        changed: set[Key] = set()
        results: list[HandlerResult] = []
        rows: list[dict[str, Any]] = []
        for mo, hall in zip(mos, halls, strict=True):
            if hall is None:
                results.append(HandlerResult(detail=f"no hall at {mo.service_number}"))
            elif mo.id in answered:
                results.append(_answered_before(answered[mo.id], hall))
            else:
                key = (mo.msisdn, hall.service_number)
                state = current.get(key) or fresh_session(*key, tenant_id=hall.tenant)
                request = _request(mo, hall)
                answer, after = self._answer(run, request, hall=hall, state=state)
                if after != state:
                    current[key] = after
                    changed.add(key)
                rows.append(_interaction(request, hall, answer))
                results.append(HandlerResult(
                    detail=f"hall {answer.command}: {answer.outcome}", reply=answer.text,
                    reply_source=REPLY_SOURCE, reply_tenant=hall.tenant))  # fmt: skip
        if rows or changed:
            _save(store, [current[k] for k in sorted(changed)], rows)
        return results

    def _answer(self, run: _Run, request: HallRequest, *, hall: HallMenu,
                state: SessionState) -> tuple[Answer, SessionState]:  # fmt: skip
        """The answer to one MO and the session after it; a command that raises (but for
        a store failure) is answered "busy" and leaves the session as it was."""
        ctx = run.context(hall)
        pending = state.pending_at(request.at)
        command = parse(normalise(request.text), hall=hall, pending=pending)
        turn = Turn(ctx, request, hall, state, pending, command)
        try:
            answer, after = COMMANDS[command.name](turn)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad MO must not sink the batch
            log.warning("hall: MO %s from %s: %s failed: %s: %s", request.mo_id,
                        mask(request.msisdn), command.name, type(exc).__name__, exc,
                        exc_info=True)  # fmt: skip
            return Answer(text=ctx.say("hall.busy", BUSY), command=command.name,
                          outcome=f"error:{type(exc).__name__}"), state  # fmt: skip
        if answer.zone is None and answer.kind == "order":
            # An order without a zone of its own counts for the zone looked at last.
            answer = replace(answer, zone=state.menu_at(request.at))
        return answer, after

    def _boss_of(self, store: Store) -> Any:
        if self._boss is None or self._boss[0] is not store:
            self._boss = (store, self.boss_factory(store))
        return self._boss[1]


@dataclass
class _Run:
    """What the MO of one batch share: the store, the BOSS, a context per hall."""

    store: Store
    settings: HallSettings
    boss: Any
    now: datetime | None
    delivery: Any
    home: Path = Path(".")
    senders: tuple[str, ...] = ()
    contexts: dict[str, HallContext] | None = None
    shared: dict[Any, Any] = field(default_factory=dict)  # HallContext.shared, for all halls

    def context(self, hall: HallMenu) -> HallContext:
        contexts = self.contexts = self.contexts or {}
        ctx = contexts.get(hall.service_number)
        if ctx is None:
            ctx = contexts[hall.service_number] = HallContext(
                store=self.store, settings=self.settings, boss=self.boss,
                now=self.now or utc_now(), texts=hall.texts, delivery=self.delivery,
                home=self.home, senders=self.senders, shared=self.shared)  # fmt: skip
        return ctx


def _read(store: Store, run: _Run, ids: list[int], keys: set[Key], halls: list[HallMenu]
          ) -> tuple[dict[int, _Recorded], dict[Key, SessionState]]:  # fmt: skip
    """What a batch reads before it answers anything: its MO already answered (a re-run),
    the senders' sessions, and (:meth:`_BatchBoss.prefetch`) their accounts and holdings.
    On PostgreSQL, all of it in one round trip (:func:`~jingxin.data.store.frozen.run_reads`),
    with what the batch's commands would read once each on their own - the senders'
    points (``JF``), each hall's current campaigns (``43``) and, from the BOSS in the
    store, the catalogue (``41``, ``42``, ``KT``): read one after the other, each was a
    wait for PostgreSQL and then for a core again, with SQLAlchemy's statement building
    around it - a third of a batch in process (pyinstrument; BENCHMARKS.md, "The way
    back, a sixth time")."""
    if store.engine.dialect.name == "postgresql":
        boss = run.boss.reads(run.senders)
        campaigns = sorted({campaigns_key(hall.tenant, hall.zones["43"].limit)
                            for hall in halls if "43" in hall.zones})  # fmt: skip
        with store.reading() as session, \
                store_errors(f"reading what the hall knows of {len(ids)} MO"):  # fmt: skip
            answered, stored, points, *more = run_reads(session.connection(), [
                _answered_read(ids), sessions_read(keys), points_read(run.senders),
                *(campaigns_read(tenant_id=tenant, limit=limit) for _, tenant, limit in campaigns),
                *boss])  # fmt: skip
        run.shared[POINTS] = points
        run.shared.update(zip(campaigns, more[:len(campaigns)], strict=True))
        known = more[len(campaigns):]
        if known:
            run.boss.primed(run.senders, *known)
        else:
            run.boss.prefetch(run.senders)  # a BOSS elsewhere (over its own API)
        return answered, stored
    run.boss.prefetch(run.senders)
    with store.reading() as session:
        return _answered(session, ids), load_sessions(session, keys)


class _BatchBoss:
    """The BOSS for one batch: the catalogue read once (every ``41`` of the batch lists
    the same products; a BOSS with ``catalogue()`` answers the zones and the products the
    batch quotes from one read of it), and the accounts and holdings of the batch's
    senders read in two queries up front (:meth:`prefetch`) instead of one or two per
    MO. A number's figures are as of the start of the batch, which is what a query
    answers with anyway; an order or a cancellation through this BOSS drops that number's
    copy, so what follows it in the batch asks afresh. Anything else goes to the BOSS
    itself."""

    def __init__(self, boss: Any) -> None:
        self._boss = boss
        self._products: dict[str | None, list[Any]] = {}
        self._product: dict[str, Any] = {}
        self._accounts: dict[str, Any] = {}
        self._holdings: dict[str, set[str]] = {}
        self._whole: list[Any] | None = None

    def prefetch(self, msisdns: Sequence[str]) -> None:
        """Read the accounts and holdings of ``msisdns`` now (a BOSS without the bulk
        reads is asked one number at a time, as before)."""
        if not msisdns or not callable(getattr(self._boss, "snapshot", None)):
            return
        accounts, holdings = self._boss.snapshot(msisdns)
        self._accounts.update({m: accounts.get(m) for m in msisdns})
        self._holdings.update(holdings)

    def reads(self, msisdns: Sequence[str]) -> list[Read]:
        """The reads of :meth:`prefetch` and of the catalogue, to be sent with the batch's
        other reads and handed to :meth:`primed` - from a BOSS that offers them as reads
        (the BOSS in the store, on PostgreSQL); else none, and :meth:`prefetch` reads."""
        snapshot = getattr(self._boss, "snapshot_read", None)
        catalogue = getattr(self._boss, "catalogue_read", None)
        if not msisdns or not (callable(snapshot) and callable(catalogue)):
            return []
        reads = [snapshot(msisdns), catalogue()]
        return [] if None in reads else reads

    def primed(self, msisdns: Sequence[str], snapshot: Any, catalogue: list[Any]) -> None:
        """What :meth:`prefetch` and :meth:`_catalogue` would have read, read with the
        batch's other reads (:meth:`reads`)."""
        accounts, holdings = snapshot
        self._accounts.update({m: accounts.get(m) for m in msisdns})
        self._holdings.update(holdings)
        self._whole = catalogue

    def account(self, msisdn: str) -> Any:
        if msisdn in self._accounts:
            return self._accounts[msisdn]
        return self._boss.account(msisdn)

    def holdings(self, msisdn: str) -> set[str]:
        if msisdn in self._holdings:
            return set(self._holdings[msisdn])
        return self._boss.holdings(msisdn)

    def place_order(self, **kwargs: Any) -> Any:
        self._forget(kwargs.get("msisdn"))
        return self._boss.place_order(**kwargs)

    def cancel(self, **kwargs: Any) -> Any:
        self._forget(kwargs.get("msisdn"))
        return self._boss.cancel(**kwargs)

    def _forget(self, msisdn: str | None) -> None:
        self._accounts.pop(msisdn or "", None)
        self._holdings.pop(msisdn or "", None)

    def products(self, zone: str | None = None) -> list[Any]:
        if zone not in self._products:
            whole = self._catalogue()
            self._products[zone] = (self._boss.products(zone=zone) if whole is None else
                                    [p for p in whole if p.active and zone in (None, p.zone)])
        return self._products[zone]

    def product(self, product_id: str) -> Any:
        key = product_id.casefold()
        if key not in self._product:
            whole = self._catalogue()
            if whole is None:
                self._product[key] = self._boss.product(product_id)
            else:  # as the BOSS matches: the id exactly, else case-insensitively
                self._product[key] = (
                    next((p for p in whole if p.product_id == product_id), None)
                    or next((p for p in whole if p.product_id.casefold() == key), None))
        return self._product[key]

    def _catalogue(self) -> list[Any] | None:
        """The whole catalogue, read once, from a BOSS that offers it (else None)."""
        if self._whole is None and callable(getattr(self._boss, "catalogue", None)):
            self._whole = list(self._boss.catalogue())
        return self._whole

    def __getattr__(self, name: str) -> Any:
        return getattr(self._boss, name)




# ----------------------------------------------------------------------------- records


def _request(mo: InboundMessage, hall: HallMenu) -> HallRequest:
    return HallRequest(mo_id=mo.id, msisdn=mo.msisdn, service_number=mo.service_number,
                       tenant_id=hall.tenant, at=mo.received_at,
                       text=readable_text(mo.text, undecodable=mo.undecodable))  # fmt: skip


def _interaction(request: HallRequest, hall: HallMenu, answer: Answer) -> dict[str, Any]:
    return {"mo_id": request.mo_id, "msisdn": request.msisdn,
            "service_number": hall.service_number, "tenant_id": hall.tenant,
            "command": answer.command[:32], "zone": answer.zone, "kind": answer.kind[:16],
            "outcome": answer.outcome[:32], "reply": answer.text, "at": request.at}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Recorded:
    command: str
    outcome: str
    reply: str | None


def _answered(session: Session, mo_ids: list[int]) -> dict[int, _Recorded]:
    """The interactions already recorded for ``mo_ids`` (a re-run of a batch)."""
    with store_errors(f"reading the hall interactions of {len(mo_ids)} MO"):
        if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
            return run_reads(session.connection(), [_answered_read(mo_ids)])[0]
        rows = session.execute(_interactions(among(session.connection(), HallInteraction.mo_id,
                                                   mo_ids)))  # fmt: skip
        return {mo_id: _Recorded(command, outcome, reply)
                for mo_id, command, outcome, reply in rows}  # fmt: skip


def _answered_read(mo_ids: list[int]) -> Read:
    """PostgreSQL: :func:`_answered` as one :class:`~jingxin.data.store.frozen.Read`."""
    return Read(_answered_frozen(), {"ids": mo_ids}, lambda rows: {
        row.mo_id: _Recorded(row.command, row.outcome, row.reply) for row in rows})


def _interactions(wanted: Any) -> Any:
    """The recorded interactions (id, command, outcome, reply) where ``wanted``."""
    return select(HallInteraction.mo_id, HallInteraction.command, HallInteraction.outcome,
                  HallInteraction.reply).where(wanted)


@functools.cache
def _answered_frozen() -> Frozen:
    """PostgreSQL: :func:`_answered`'s read over the array parameter ``ids``, built once
    (building it each batch was 7 % of a small hall batch: py-spy, BENCHMARKS.md)."""
    from sqlalchemy import BigInteger, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY

    return Frozen(lambda: _interactions(in_array(HallInteraction.mo_id,
                                                 bindparam("ids", type_=ARRAY(BigInteger())))))


def _answered_before(recorded: _Recorded, hall: HallMenu) -> HandlerResult:
    return HandlerResult(detail=f"hall {recorded.command}: {recorded.outcome} (answered before)",
                         reply=recorded.reply, reply_source=REPLY_SOURCE,
                         reply_tenant=hall.tenant)  # fmt: skip


_INTERACTION_COLUMNS = ("mo_id", "msisdn", "service_number", "tenant_id", "command", "zone",
                        "kind", "outcome", "reply", "at")  # fmt: skip
# PostgreSQL: the batch's sessions and interactions in ONE statement over one array per
# column - its own transaction, one round trip, one text whatever the batch (prepared
# once). The portable way (below) is a transaction of an upsert and an insert.
_SAVE_PG = text(
    f"WITH saved AS ({upsert_sql(prefix='s_')}) "
    f"INSERT INTO hall_interactions ({', '.join(_INTERACTION_COLUMNS)}) "
    f"SELECT * FROM {unnest_arrays(HallInteraction.__table__, _INTERACTION_COLUMNS, prefix='i_', alias='i')} "
    "ON CONFLICT (mo_id) DO NOTHING"
)


def _save(store: Store, states: list[SessionState], rows: list[dict[str, Any]]) -> None:
    """The changed sessions and the batch's interactions, together or not at all (an MO a
    twin run recorded first is skipped)."""
    if store.engine.dialect.name != "postgresql":
        with store.transaction() as session:
            save_sessions(session, states)
            _record(session, rows)
        return
    arrays = {**session_arrays(session_rows(states), prefix="s_"),
              **array_values(rows, _INTERACTION_COLUMNS, prefix="i_")}  # fmt: skip
    with store_errors(f"saving {len(states)} hall session(s) and {len(rows)} interaction(s)"), \
            store.autocommit() as connection:  # fmt: skip
        connection.execute(_SAVE_PG, arrays)


def _record(session: Session, rows: list[dict[str, Any]]) -> None:
    """SQLite: one insert of the batch's interactions; an MO a twin run recorded first is
    skipped. On the Core connection: the ORM's bulk-insert path costs ~0.1 ms a row more."""
    if rows:
        with store_errors(f"recording {len(rows)} hall interaction(s)"):
            session.connection().execute(sqlite.insert(HallInteraction.__table__)
                                         .on_conflict_do_nothing(index_elements=["mo_id"]), rows)  # fmt: skip


# ----------------------------------------------------------------------------- wiring


def hall_handler(settings: Settings) -> HallHandler:
    """The hall of ``settings``: its menu file (``[hall] menu_path``, else the packaged one)
    with the halls edited over the API (:mod:`jingxin.hall.menu_edits`, picked up while
    running) and the BOSS kept in the store."""
    from jingxin.hall.menu_edits import MenuSource

    hall = settings.hall
    source = MenuSource(settings)

    def store_boss(store: Store) -> Any:
        from jingxin.hall.boss import StoreBoss

        return StoreBoss(store, timeout_seconds=hall.boss_timeout_seconds)

    return HallHandler(menu=source.menu, settings=hall, boss_factory=store_boss,
                       home=settings.home, source=source)  # fmt: skip
