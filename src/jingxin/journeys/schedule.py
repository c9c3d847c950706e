"""When the journeys' work is due, and the lease that keeps it to one scheduler.

* The lease (:func:`acquire`, :func:`renew`, :func:`release` on ``scheduler_locks``): one
  statement each, safe when two schedulers on two machines race on PostgreSQL or SQLite.
  Acquiring is ``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE`` the lease expired
  (or is already ours): the database decides who wins, never a read-then-write.
* :func:`due_days`: the days whose daily scan (every wanted trigger ``done`` in
  ``journey_runs``) has not finished and whose scan time has passed in the operator's
  zone - today, and the missed days before it (at most ``catch_up_days``), oldest first.
* :class:`JourneyDuties`: what ``jingxin scheduler`` does for journeys each tick: the scan
  of each due day, the daily enrolment of journeys whose entry is a trigger, then every
  due step of every journey. Each part is idempotent (run keys, unique enrolments, the
  delivery entry's keys), so a tick cut off is finished by the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import JourneyRun, SchedulerLock, utc_now

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.data.warehouse.connection import Warehouse
    from jingxin.journeys.flow import Flow

log = logging.getLogger("jingxin.scheduler")

LOCK_NAME = "scheduler"
RETRY_AFTER = timedelta(minutes=30)  # a day whose scan did not finish is tried again after
_LOCKS = SchedulerLock.__table__


# ----------------------------------------------------------------------------- the lease


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds the lock ``name`` and until when; ``acquired``: the asker does."""

    name: str
    holder: str
    expires_at: datetime
    acquired: bool


def acquire(store: Store, name: str, holder: str, *, ttl: timedelta,
            now: datetime | None = None) -> Lease:  # fmt: skip
    """Take the lease ``name`` for ``ttl`` when nobody holds it, its lease expired, or
    ``holder`` has it already (then it is extended); otherwise say who has it."""
    now = now or utc_now()
    with store_errors(f"taking the lock {name!r}"), store.transaction() as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(_LOCKS).values(name=name, holder=holder, acquired_at=now,
                                                  expires_at=now + ttl)  # fmt: skip
        ours = _LOCKS.c.holder == statement.excluded.holder
        statement = statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": statement.excluded.holder,
                  "acquired_at": case((ours, _LOCKS.c.acquired_at), else_=statement.excluded.acquired_at),
                  "expires_at": statement.excluded.expires_at},
            where=or_(_LOCKS.c.expires_at <= now, ours),
        ).returning(_LOCKS.c.holder, _LOCKS.c.expires_at)  # fmt: skip
        taken = session.execute(statement).first()
        if taken is None:
            taken = session.execute(select(_LOCKS.c.holder, _LOCKS.c.expires_at)
                                    .where(_LOCKS.c.name == name)).one()  # fmt: skip
    return Lease(name, taken[0], taken[1], taken[0] == holder)


def renew(store: Store, name: str, holder: str, *, ttl: timedelta,
          now: datetime | None = None) -> bool:  # fmt: skip
    """Extend ``holder``'s lease; False when it is not theirs any more (another took it
    over after it expired)."""
    now = now or utc_now()
    with store_errors(f"renewing the lock {name!r}"), store.transaction() as session:
        done = session.execute(update(_LOCKS).where(_LOCKS.c.name == name, _LOCKS.c.holder == holder)
                               .values(expires_at=now + ttl))  # fmt: skip
    return done.rowcount == 1


def release(store: Store, name: str, holder: str) -> bool:
    """Give the lease up (only ``holder``'s), so the next scheduler need not wait for it
    to expire."""
    with store_errors(f"releasing the lock {name!r}"), store.transaction() as session:
        done = session.execute(delete(_LOCKS).where(_LOCKS.c.name == name,
                                                    _LOCKS.c.holder == holder))  # fmt: skip
    return done.rowcount == 1


# ----------------------------------------------------------------------------- due days


def due_days(store: Store, *, now: datetime, scan_at: str | time, tz: str,
             catch_up_days: int = 7, triggers: Sequence[str] | None = None) -> list[date]:  # fmt: skip
    """The days, oldest first, whose scan time (``scan_at``, local to ``tz``) has passed
    and for which not every one of ``triggers`` (default: all of the daily scan's) has a
    ``done`` run: the last such day and the missed ones before it, at most
    ``catch_up_days`` in all, and none before the first day these triggers ever ran - a
    first start does not send a week of late birthday wishes."""
    from jingxin.journeys.triggers import TRIGGERS

    names = list(triggers) if triggers is not None else list(TRIGGERS)
    if isinstance(scan_at, str):
        scan_at = time.fromisoformat(scan_at)
    local = now.astimezone(ZoneInfo(tz))
    last = local.date() if local.time() >= scan_at else local.date() - timedelta(days=1)
    first = last - timedelta(days=max(catch_up_days, 1) - 1)
    R = JourneyRun
    with store_errors("reading the daily scans' runs"), store.transaction() as session:
        ever = session.scalar(select(func.min(R.day)).where(R.trigger.in_(names)))
        done = Counter(day for (day,) in session.execute(
            select(R.day).where(and_(R.trigger.in_(names), R.state == "done", R.day >= first))))  # fmt: skip
    first = last if ever is None else max(first, ever)  # nothing before the first scan ever
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [day for day in days if done[day] < len(set(names))]


# ----------------------------------------------------------------------------- the duties


@dataclass
class JourneyDuties:
    """One scheduler tick of journey work: scans of the due days, the journeys' daily
    enrolments, then their due steps. ``keep`` (the lease's renewal) is asked before each
    long part; when it says the lease is lost, the tick stops. A failing part is logged
    and the rest still run."""

    settings: Settings
    store: Store
    warehouse: Callable[[], Warehouse] | None = None  # opened on first need
    keep: Callable[[], bool] | None = None
    clock: Callable[[], datetime] = utc_now
    catch_up_days: int = 7
    _tried: dict[tuple[str, date], datetime] = field(default_factory=dict, repr=False)
    _opened: Warehouse | None = field(default=None, repr=False)

    async def __call__(self, n: int) -> Counter[str]:
        return await asyncio.to_thread(self.run, n)

    def run(self, n: int = 0) -> Counter[str]:
        now = self.clock()
        flows = self._flows()
        self._scan(now)
        self._enrol(flows, now)
        if not flows or not self._kept():
            return Counter()
        from jingxin.journeys.engine import advance

        counts = advance(self.store, flows, now=now, settings=self.settings)
        if counts:
            log.info("journeys advanced: %s", dict(counts))
        return counts

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def _kept(self) -> bool:
        if self.keep is None or self.keep():
            return True
        log.warning("the scheduler lock was lost: the journeys' work stops for this tick")
        return False

    def _flows(self) -> list[Flow]:
        from jingxin.journeys.flow import FlowError, load_flows

        directory = self.settings.journeys.journeys_dir
        if not directory:
            return []
        try:
            return load_flows(directory, store=self.store)
        except FlowError as exc:
            log.error("the journeys in %s do not validate; none advances until fixed:\n%s",
                      directory, exc)  # fmt: skip
            return []

    def _days(self, now: datetime, triggers: Sequence[str], what: str) -> list[date]:
        journeys = self.settings.journeys
        days = due_days(self.store, now=now, scan_at=journeys.scan_at,
                        tz=self.settings.policy.default_timezone,
                        catch_up_days=self.catch_up_days, triggers=triggers)  # fmt: skip
        fresh = [d for d in days if now - self._tried.get((what, d), datetime.min.replace(
            tzinfo=now.tzinfo)) >= RETRY_AFTER]  # fmt: skip
        for day in fresh:
            self._tried[what, day] = now
        return fresh

    def _scan(self, now: datetime) -> None:
        from jingxin.journeys.triggers import wanted

        for day in self._days(now, wanted(self.settings.journeys.triggers), "scan"):
            if not self._kept():
                return
            try:
                from jingxin.journeys.scan import run_scan

                log.info("daily scan of %s", day)
                run_scan(self.settings, self.store, self._warehouse(), day=day)
            except Exception:  # noqa: BLE001 - tried again after RETRY_AFTER; the rest goes on
                log.exception("the daily scan of %s failed; it is tried again in %s", day, RETRY_AFTER)

    def _enrol(self, flows: list[Flow], now: datetime) -> None:
        from jingxin.journeys.engine import enrol_from_trigger

        for flow in flows:
            if flow.entry.trigger is None:
                continue
            for day in self._days(now, [flow.run_name], flow.run_name):
                if not self._kept():
                    return
                try:
                    made = enrol_from_trigger(self.store, flow, warehouse=self._warehouse(),
                                              settings=self.settings, day=day, now=now)  # fmt: skip
                    log.info("journey %s, %s: %d enrolled (%d held out), %d already",
                             flow.name, day, made.enrolled, made.holdout, made.already)  # fmt: skip
                except Exception:  # noqa: BLE001 - as for the scan
                    log.exception("enrolling journey %s for %s failed", flow.name, day)

    def _warehouse(self) -> Any:
        if self._opened is None:
            if self.warehouse is not None:
                self._opened = self.warehouse()
            else:
                from jingxin.data.warehouse.connection import open_warehouse

                self._opened = open_warehouse(self.settings.warehouse)
        return self._opened
