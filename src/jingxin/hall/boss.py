"""The BOSS (the operator's billing and CRM) as the hall sees it, and its in-store stand-in.

:class:`Boss` is the small protocol the hall talks to: a number's account (balance, plan,
usage), the product catalogue, what a number holds, and the order book. A real operator
plugs in their own adapter; :class:`StoreBoss` keeps the same things in the store's
``boss_*`` tables for tests, the demo and the benchmark.

Order rules (:func:`check_order`, one function for the hall's quote and the BOSS's own
check, so both refuse alike), in this order: ``unknown_product`` (no such product, or
withdrawn), ``not_eligible`` (no account or not active, star level below the product's,
payment type not the product's, an electronic-only product asked for through another
channel), ``already_held``, ``mutually_exclusive`` (holds another product of the same
exclusive group), ``insufficient_balance`` (prepaid and the balance below the fee).

Plans are products too (category :data:`PLAN_CATEGORY`, id :func:`plan_code` of the
warehouse's plan id, seeded by :mod:`jingxin.hall.seed`), but a plan is not held: it is the
account's plan. Ordering one is a plan change: ``already_held`` when the account is on it
already, the eligibility checks as for any product (a prepaid plan for prepaid accounts),
nothing held, exclusive or charged now (a plan is billed monthly, from the next month). On
success the account's ``plan_id`` becomes the plan's product id (the compact code: the
stand-in keeps no other trace of the warehouse id, and a re-seed restores the warehouse's
own) and its ``plan_name`` the plan's name; its allowances follow with the next seed.

Crash-safety and idempotency contract
-------------------------------------
:meth:`StoreBoss.place_order` is keyed by ``request_key``: the order-book row, the holding
and the prepaid deduction commit in ONE transaction, and a second call with the same key
answers the first call's result without charging again (also when two calls race: the
loser's insert hits the unique key and it reads the winner's row). A refusal is booked
too, so it is answered the same way. :class:`BossTimeout` means *the answer was lost*:
the BOSS may or may not have done it, so the caller asks :meth:`~Boss.find_order` (or
places again with the same key) instead of placing anew.
"""

from __future__ import annotations

import functools
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jingxin.data.store.bulk import among
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.frozen import Frozen, Read, run_reads
from jingxin.data.store.models import (
    BossAccount,
    BossHolding,
    BossOrder,
    BossProduct,
    utc_now,
)
from jingxin.errors import InputError, JingxinError, StoreError

__all__ = ["ELECTRONIC_CHANNELS", "PLAN_CATEGORY", "Account", "Boss", "BossError", "BossFaults",
           "BossResult", "BossTimeout", "Product", "Refusal", "StoreBoss", "check_order",
           "plan_code"]  # fmt: skip

ELECTRONIC_CHANNELS = frozenset({"sms_hall", "app"})  # where electronic-only products sell
PLAN_CATEGORY = "plan"  # a product that is a plan: ordering it changes the account's plan


def plan_code(plan_id: str) -> str:
    """The product id of the warehouse plan ``plan_id``: its letters and digits, at most 10,
    upper case (``P4G-034-C24`` → ``P4G034C24``). The same code the journeys' messages
    teach after ``XY`` (:func:`jingxin.journeys.triggers.renewal.order_code`)."""
    return re.sub(r"[^A-Za-z0-9]", "", plan_id)[:10].upper()


class BossError(JingxinError):
    """The BOSS answered that it did not do what it was asked (unavailable, bad request)."""


class BossTimeout(BossError):
    """The BOSS did not answer in time: it may or may not have done it. Ask, never repeat."""


@dataclass(frozen=True, slots=True)
class Account:
    """A number's account: plan, payment type, standing, balance and this month's usage."""

    msisdn: str
    plan_id: str
    plan_name: str
    payment: str  # "prepaid" | "postpaid"
    status: str  # "active", "suspended", ...
    star_level: int
    balance_fen: int
    data_quota_mb: int = 0
    data_used_mb: int = 0
    voice_quota_min: int = 0
    voice_used_min: int = 0
    sms_quota: int = 0
    sms_used: int = 0

    @classmethod
    def of(cls, row: Any) -> Account:
        """From a ``boss_accounts`` row (an ORM object or a Core row alike)."""
        return cls(**{name: getattr(row, name) for name in _ACCOUNT})


_ACCOUNT = tuple(f.name for f in fields(Account))  # the boss_accounts columns it is made of


@dataclass(frozen=True, slots=True)
class Product:
    """A product of the catalogue (see :class:`~jingxin.data.store.models.BossProduct`)."""

    product_id: str
    name: str
    monthly_fee_fen: int
    category: str = "other"
    zone: str | None = None  # "41" trials, "42" deals
    trial_days: int = 0
    electronic_only: bool = False
    exclusive_group: str | None = None
    min_star_level: int = 0
    payment: str | None = None  # None: any payment type
    rank: int = 0
    active: bool = True

    @classmethod
    def of(cls, row: Any) -> Product:
        """From a ``boss_products`` row (an ORM object or a Core row alike)."""
        return cls(**{name: getattr(row, name) for name in _PRODUCT})


_PRODUCT = tuple(f.name for f in fields(Product))  # the boss_products columns it is made of


@dataclass(frozen=True, slots=True)
class BossResult:
    """The BOSS's answer to an order or a cancellation."""

    state: str  # "placed" | "refused" | "cancelled"
    reason: str | None = None  # why it was refused (ORDER_REASONS, or "not_held")
    boss_ref: str | None = None
    fee_fen: int = 0

    @classmethod
    def of(cls, row: BossOrder) -> BossResult:
        return cls(state=row.state, reason=row.reason, boss_ref=row.boss_ref,
                   fee_fen=row.fee_fen)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an order cannot be placed: the reason, and what makes it readable."""

    reason: str  # ORDER_REASONS
    detail: str | None = None  # not_eligible: no_account|inactive|star_level|payment|channel
    other: Product | None = None  # mutually_exclusive: the held product in the way


@runtime_checkable
class Boss(Protocol):
    """What the hall asks the operator's BOSS. Product ids are matched case-insensitively
    (subscribers type ``kt10a`` for ``10A``); numbers are E.164."""

    def account(self, msisdn: str) -> Account | None: ...

    def products(self, zone: str | None = None) -> list[Product]: ...

    def product(self, product_id: str) -> Product | None: ...

    def holdings(self, msisdn: str) -> set[str]: ...

    def place_order(self, *, request_key: str, msisdn: str, product_id: str, channel: str,
                    fee_fen: int) -> BossResult: ...  # fmt: skip

    def find_order(self, request_key: str) -> BossResult | None: ...

    def cancel(self, *, request_key: str, msisdn: str, product_id: str) -> BossResult: ...


def check_order(*, account: Account | None, product: Product | None, held: Iterable[Product],
                channel: str, fee_fen: int) -> Refusal | None:  # fmt: skip
    """Why ``account`` may not order ``product`` through ``channel`` for ``fee_fen``, or None.

    ``held`` are the products the number holds. The checks run in the module's order, so
    the first reason found is the one the subscriber is told.
    """
    if product is None or not product.active:
        return Refusal("unknown_product")
    if account is None:
        return Refusal("not_eligible", "no_account")
    if account.status != "active":
        return Refusal("not_eligible", "inactive")
    if account.star_level < product.min_star_level:
        return Refusal("not_eligible", "star_level")
    if product.payment is not None and product.payment != account.payment:
        return Refusal("not_eligible", "payment")
    if product.electronic_only and channel not in ELECTRONIC_CHANNELS:
        return Refusal("not_eligible", "channel")
    if product.category == PLAN_CATEGORY:  # the account's plan, not a holding; billed monthly
        on_it = plan_code(account.plan_id) == product.product_id.upper()
        return Refusal("already_held") if on_it else None
    held = list(held)
    if any(h.product_id == product.product_id for h in held):
        return Refusal("already_held")
    if product.exclusive_group is not None:
        other = next((h for h in held if h.exclusive_group == product.exclusive_group), None)
        if other is not None:
            return Refusal("mutually_exclusive", other=other)
    if account.payment == "prepaid" and account.balance_fen < fee_fen:
        return Refusal("insufficient_balance")
    return None


class BossFaults:
    """Faults to inject into a :class:`StoreBoss` (tests, the demo): each queued fault
    applies to the next :meth:`~StoreBoss.place_order` call. Thread-safe."""

    def __init__(self) -> None:
        self._queue: list[str] = []
        self._lock = threading.Lock()

    def timeout_next(self, n: int = 1, *, after_commit: bool = True) -> None:
        """The next ``n`` orders time out: after the BOSS committed them (the answer was
        lost) or before it did anything (the request was lost)."""
        self._add("after" if after_commit else "before", n)

    def fail_next(self, n: int = 1) -> None:
        """The next ``n`` orders are answered with a :class:`BossError` (nothing done)."""
        self._add("error", n)

    def take(self) -> str | None:
        """The fault for the call being made now ("after", "before", "error"), or None."""
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def _add(self, kind: str, n: int) -> None:
        if n < 0:
            raise InputError(f"faults: n must not be negative, got {n}")
        with self._lock:
            self._queue.extend([kind] * n)


@functools.cache
def _catalogue_frozen() -> Frozen:
    """PostgreSQL: :meth:`StoreBoss.catalogue`'s read, built once."""
    products = BossProduct.__table__
    return Frozen(lambda: select(*(products.c[f] for f in _PRODUCT))  # type: ignore[attr-defined]
                  .order_by(products.c.rank, products.c.product_id))  # type: ignore[attr-defined]


@functools.cache
def _snapshot_frozen() -> Frozen:
    """PostgreSQL: :meth:`StoreBoss.snapshot` as ONE statement built once, over the array
    parameter ``wanted``: each number, its account (if any) and what it holds - ``SELECT
    k.value AS wanted, acc.*, (SELECT array_agg(product_id) FROM boss_holdings WHERE
    msisdn = k.value) AS held FROM unnest(:wanted) AS k LEFT JOIN LATERAL (SELECT * FROM
    boss_accounts WHERE msisdn = k.value OFFSET 0) AS acc ON true`` (an index probe per
    number, as :func:`~jingxin.data.store.bulk.probe`). The portable way, two reads with
    their accounts loaded as ORM objects, was 7 % of a hall batch (py-spy, BENCHMARKS.md)."""
    from sqlalchemy import Text, bindparam, cast, literal_column, true
    from sqlalchemy.dialects.postgresql import ARRAY

    def build() -> Any:
        accounts, holdings = BossAccount.__table__, BossHolding.__table__
        parameter = bindparam("wanted", type_=ARRAY(Text()))
        k = func.unnest(cast(parameter, ARRAY(Text()))).table_valued("value").render_derived(name="k")
        acc = (select(*(accounts.c[f] for f in _ACCOUNT)).where(accounts.c.msisdn == k.c.value)  # type: ignore[attr-defined]
               .offset(literal_column("0")).lateral("acc"))  # fmt: skip
        held = (select(func.array_agg(holdings.c.product_id))  # type: ignore[attr-defined]
                .where(holdings.c.msisdn == k.c.value).scalar_subquery())  # type: ignore[attr-defined]  # fmt: skip
        return (select(k.c.value.label("wanted"), *acc.c, held.label("held"))
                .select_from(k.outerjoin(acc, true())))  # fmt: skip

    return Frozen(build)

class StoreBoss:
    """The BOSS kept in the store (``boss_accounts``, ``boss_products``, ``boss_holdings``,
    ``boss_orders``). A call that takes longer than ``timeout_seconds`` raises
    :class:`BossTimeout` after its commit, as a caller that gave up waiting would see it."""

    def __init__(self, store: Store, *, timeout_seconds: float = 2.0,
                 faults: BossFaults | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:  # fmt: skip
        self.store = store
        self.timeout_seconds = timeout_seconds
        self.faults = faults
        # When an order is booked: the wall clock, or (a simulation replaying days, as the
        # simulated subscribers do) the instant the subscriber acted.
        self.clock = clock

    # ----------------------------------------------------------------- reads

    def account(self, msisdn: str) -> Account | None:
        with self.store.reading() as s, store_errors(f"reading the BOSS account of {msisdn}"):
            row = s.get(BossAccount, msisdn)
            return None if row is None else Account.of(row)

    def products(self, zone: str | None = None) -> list[Product]:
        query = select(BossProduct).where(BossProduct.active.is_(True))
        if zone is not None:
            query = query.where(BossProduct.zone == zone)
        query = query.order_by(BossProduct.rank, BossProduct.product_id)
        with self.store.reading() as s, store_errors("reading the BOSS products"):
            return [Product.of(row) for row in s.scalars(query)]

    def catalogue(self) -> list[Product]:
        """Every product, active or not, in the order :meth:`products` lists them: what a
        batch of hall MO reads once instead of a zone list and a product at a time."""
        read = self.catalogue_read()
        if read is not None:
            with self.store.autocommit() as conn, store_errors("reading the BOSS catalogue"):
                return run_reads(conn, [read])[0]
        query = select(BossProduct).order_by(BossProduct.rank, BossProduct.product_id)
        with self.store.reading() as s, store_errors("reading the BOSS catalogue"):
            return [Product.of(row) for row in s.scalars(query)]

    def product(self, product_id: str) -> Product | None:
        with self.store.reading() as s, store_errors(f"reading BOSS product {product_id}"):
            row = _product_row(s, product_id)
            return None if row is None else Product.of(row)

    def holdings(self, msisdn: str) -> set[str]:
        query = select(BossHolding.product_id).where(BossHolding.msisdn == msisdn)
        with self.store.reading() as s, store_errors(f"reading the BOSS holdings of {msisdn}"):
            return set(s.scalars(query))

    def snapshot(self, msisdns: Sequence[str]) -> tuple[dict[str, Account], dict[str, set[str]]]:
        """(accounts, holdings) of many numbers at once, in two reads: a number with no
        account is absent from the first; every number asked is in the second. (On
        PostgreSQL each read is its own snapshot - :meth:`Store.reading`: a query answers
        with the figures of its moment; an order checks them again when it is placed.)"""
        wanted = sorted(set(msisdns))
        read = self.snapshot_read(wanted)
        if read is not None:
            with self.store.autocommit() as conn, \
                    store_errors(f"reading {len(wanted)} BOSS accounts"):  # fmt: skip
                return run_reads(conn, [read])[0]
        found: dict[str, Account] = {}
        held: dict[str, set[str]] = {m: set() for m in wanted}
        holdings = select(BossHolding.msisdn, BossHolding.product_id)
        with self.store.reading() as s, store_errors(f"reading {len(wanted)} BOSS accounts"):
            conn = s.connection()
            for row in s.scalars(select(BossAccount).where(among(conn, BossAccount.msisdn, wanted))):
                found[row.msisdn] = Account.of(row)
            for msisdn, product_id in s.execute(holdings.where(
                    among(conn, BossHolding.msisdn, wanted))):  # fmt: skip
                held[msisdn].add(product_id)
        return found, held

    def snapshot_read(self, msisdns: Sequence[str]) -> Read | None:
        """PostgreSQL: :meth:`snapshot` as one :class:`~jingxin.data.store.frozen.Read`
        (:func:`~jingxin.data.store.frozen.run_reads` sends it with a hall batch's other
        reads); None on another store, where :meth:`snapshot` reads it."""
        if self.store.engine.dialect.name != "postgresql":
            return None
        wanted = sorted(set(msisdns))

        def finish(rows: list[Any]) -> tuple[dict[str, Account], dict[str, set[str]]]:
            found: dict[str, Account] = {}
            held: dict[str, set[str]] = {m: set() for m in wanted}
            for row in rows:
                if row.msisdn is not None:
                    found[row.msisdn] = Account.of(row)
                held[row.wanted].update(row.held or ())
            return found, held

        return Read(_snapshot_frozen(), {"wanted": wanted}, finish)

    def catalogue_read(self) -> Read | None:
        """PostgreSQL: :meth:`catalogue` as one :class:`~jingxin.data.store.frozen.Read`
        (Core rows of a statement built once: the ORM's objects cost 6 % of a small hall
        batch - py-spy; BENCHMARKS.md, "The way back, a fifth time"); None elsewhere."""
        if self.store.engine.dialect.name != "postgresql":
            return None
        return Read(_catalogue_frozen(), finish=lambda rows: [Product.of(row) for row in rows])

    def find_order(self, request_key: str) -> BossResult | None:
        query = select(BossOrder).where(BossOrder.request_key == request_key)
        with self.store.reading() as s, store_errors(f"reading BOSS order {request_key}"):
            row = s.scalar(query)
            return None if row is None else BossResult.of(row)

    # ----------------------------------------------------------------- writes

    def place_order(self, *, request_key: str, msisdn: str, product_id: str, channel: str,
                    fee_fen: int) -> BossResult:  # fmt: skip
        """Place (or refuse, booked either way) the order ``request_key``; the same key
        again answers the first result. Raises :class:`BossTimeout` / :class:`BossError`."""
        if fee_fen < 0:
            raise InputError(f"BOSS order {request_key}: fee_fen must not be negative, "
                             f"got {fee_fen}")  # fmt: skip
        fault = self.faults.take() if self.faults is not None else None
        if fault == "error":
            raise BossError(f"BOSS order {request_key}: refused by the BOSS (injected)")
        if fault == "before":
            raise BossTimeout(f"BOSS order {request_key}: no answer (request lost, injected)")
        started = time.monotonic()
        result = self._keyed(request_key, lambda s: _place(
            s, request_key=request_key, msisdn=msisdn, product_id=product_id,
            channel=channel, fee_fen=fee_fen, now=self.clock()))  # fmt: skip
        self._answer_in_time(request_key, started, lost=fault == "after")
        return result

    def cancel(self, *, request_key: str, msisdn: str, product_id: str) -> BossResult:
        """Cancel ``product_id`` for ``msisdn`` (state ``cancelled``, or ``refused`` with
        reason ``not_held``); the same key again answers the first result."""
        started = time.monotonic()
        result = self._keyed(request_key, lambda s: _cancel(
            s, request_key=request_key, msisdn=msisdn, product_id=product_id))  # fmt: skip
        self._answer_in_time(request_key, started, lost=False)
        return result

    def _keyed(self, request_key: str, work: Callable[[Session], BossResult]) -> BossResult:
        """``work(session)`` in one transaction, unless ``request_key`` is booked already.
        A unique-key race (a twin call, or a holding booked meanwhile) runs it once more:
        the second time it finds the twin's row, or refuses ``already_held``."""
        try:
            return self._once(request_key, work)
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        return self._once(request_key, work)

    def _once(self, request_key: str, work: Callable[[Session], BossResult]) -> BossResult:
        with self.store.transaction() as session, store_errors(f"BOSS order {request_key}"):
            booked = session.scalar(select(BossOrder).where(BossOrder.request_key == request_key))
            return BossResult.of(booked) if booked is not None else work(session)

    def _answer_in_time(self, request_key: str, started: float, *, lost: bool) -> None:
        took = time.monotonic() - started
        if lost:
            raise BossTimeout(f"BOSS order {request_key}: done, but the answer was lost "
                              "(injected)")  # fmt: skip
        if took > self.timeout_seconds:
            raise BossTimeout(f"BOSS order {request_key}: answered after {took:.1f} s "
                              f"(timeout {self.timeout_seconds} s)")  # fmt: skip


def _product_row(session: Session, product_id: str) -> BossProduct | None:
    """The product by id, exactly or else case-insensitively (the catalogue is small)."""
    row = session.get(BossProduct, product_id)
    if row is None:
        row = session.scalar(select(BossProduct).where(
            func.lower(BossProduct.product_id) == product_id.lower()))  # fmt: skip
    return row


def _place(session: Session, *, request_key: str, msisdn: str, product_id: str, channel: str,
           fee_fen: int, now: datetime) -> BossResult:  # fmt: skip
    row = _product_row(session, product_id)
    product = None if row is None else Product.of(row)
    # Lock the account (PostgreSQL): two orders of one number are checked one after the
    # other, so the balance is never spent twice.
    account_row = session.scalar(select(BossAccount).where(BossAccount.msisdn == msisdn)
                                 .with_for_update())  # fmt: skip
    account = None if account_row is None else Account.of(account_row)
    held_ids = select(BossHolding.product_id).where(BossHolding.msisdn == msisdn)
    held = [Product.of(p) for p in session.scalars(
        select(BossProduct).where(BossProduct.product_id.in_(held_ids)))]  # fmt: skip
    refusal = check_order(account=account, product=product, held=held, channel=channel,
                          fee_fen=fee_fen)  # fmt: skip
    boss_ref = "BO" + uuid.uuid4().hex[:18].upper()
    booked_id = product.product_id if product is not None else product_id
    if refusal is not None:
        order = BossOrder(boss_ref=boss_ref, request_key=request_key, msisdn=msisdn,
                          product_id=booked_id[:32], channel=channel, fee_fen=fee_fen,
                          state="refused", reason=refusal.reason, at=now)  # fmt: skip
    elif product is not None and product.category == PLAN_CATEGORY:
        assert account_row is not None  # check_order saw to it
        account_row.plan_id, account_row.plan_name = product.product_id, product.name
        account_row.updated_at = now
        order = BossOrder(boss_ref=boss_ref, request_key=request_key, msisdn=msisdn,
                          product_id=booked_id, channel=channel, fee_fen=0, state="placed",
                          at=now)  # fmt: skip
    else:
        assert account_row is not None and product is not None  # check_order saw to it
        if account_row.payment == "prepaid":  # postpaid: on the next bill, not now
            account_row.balance_fen -= fee_fen
            account_row.updated_at = now
        session.add(BossHolding(msisdn=msisdn, product_id=booked_id, boss_ref=boss_ref,
                                since=now))  # fmt: skip
        order = BossOrder(boss_ref=boss_ref, request_key=request_key, msisdn=msisdn,
                          product_id=booked_id, channel=channel, fee_fen=fee_fen,
                          state="placed", at=now)  # fmt: skip
    session.add(order)
    session.flush()
    return BossResult.of(order)


def _cancel(session: Session, *, request_key: str, msisdn: str, product_id: str) -> BossResult:
    row = _product_row(session, product_id)
    booked_id = row.product_id if row is not None else product_id
    removed = session.execute(delete(BossHolding).where(
        BossHolding.msisdn == msisdn, BossHolding.product_id == booked_id)).rowcount  # fmt: skip
    order = BossOrder(boss_ref="BC" + uuid.uuid4().hex[:18].upper(), request_key=request_key,
                      msisdn=msisdn, product_id=booked_id[:32], channel="sms_hall", fee_fen=0,
                      state="cancelled" if removed else "refused",
                      reason=None if removed else "not_held", at=utc_now())  # fmt: skip
    session.add(order)
    session.flush()
    return BossResult.of(order)
