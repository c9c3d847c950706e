"""Seeding the BOSS stand-in from the warehouse, and the demo's staff and merchants.

The hall sells from ``boss_products``, answers balance, usage and plan queries from
``boss_accounts`` and checks holdings in ``boss_holdings`` (:mod:`jingxin.hall.boss`). An
operator with a real BOSS plugs that in instead; everyone else - the demo, the benchmark,
a trial - loads the stand-in from what they have:

* products from a catalogue file (YAML; the packaged ``catalogue.yaml`` unless one is
  named), checked at the edge: an error names the file, the entry and the field;
* plans from the warehouse's ``plans``, as products of category ``plan`` (ordered with
  ``XY<code>``, see :mod:`jingxin.hall.boss`): id the plan id's compact code
  (:func:`~jingxin.hall.boss.plan_code`), the plan's name, fee, payment type and tier (as
  the rank), in no zone. Two plans with one code, or a plan code that is a catalogue
  product's id, stop the seed with both named;
* accounts from the warehouse's ``subscribers`` with their plan's allowances (``plans``)
  and their latest month of use (``usage_monthly``). The warehouse knows no balance, so a
  prepaid account gets a pseudo balance derived from its subscriber id: the same on every
  seed, spread from 0 to 200 yuan so that some orders are refused for want of balance;
* holdings from the warehouse's open ``holdings`` of catalogue products.

Re-runnable: every write is an upsert keyed as the table is (product id, number, number and
product), so a second seed updates and never duplicates. Accounts are read from the
warehouse a page at a time (by subscriber id) and written in chunks, one transaction per
chunk; a seed that stops half way leaves whole chunks and is finished by running it again.
A re-seed refreshes plans and usage but keeps an account's balance (once seeded, the
balance is the BOSS's own: orders have been charged to it) and never removes a holding
(the BOSS's orders add holdings the warehouse does not know yet). Products the catalogue
no longer has are retired (``active`` false), not deleted: orders still name them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, update
from sqlalchemy.dialects import postgresql, sqlite

from jingxin.data.store.engine import Store
from jingxin.data.store.models.hall import BossAccount, BossHolding, BossProduct
from jingxin.data.store.models.tenants import DEFAULT_TENANT_ID
from jingxin.data.warehouse.connection import Warehouse
from jingxin.errors import InputError
from jingxin.hall.boss import PLAN_CATEGORY, plan_code

DEFAULT_CATALOGUE = Path(__file__).with_name("catalogue.yaml")
READ_PAGE = 50_000  # subscribers read from the warehouse at a time
CHUNK = 2_000  # rows written per store transaction
MAX_PSEUDO_BALANCE_FEN = 20_000  # pseudo balances spread over 0 .. 200 yuan
WAREHOUSE_ZONE = ZoneInfo("Asia/Shanghai")  # warehouse dates are China Standard Time

# The demo's hall: staff in two branches, and merchants redeeming from these numbers.
DEMO_STAFF: tuple[tuple[str, str, str], ...] = (
    ("S1001", "王芳", "浦东营业厅"),
    ("S1002", "李强", "浦东营业厅"),
    ("S2001", "张敏", "徐汇营业厅"),
    ("S2002", "陈磊", "徐汇营业厅"),
)
DEMO_MERCHANTS: tuple[tuple[str, str, str], ...] = (
    ("M001", "星巴克(陆家嘴店)", "+8613700000101"),
    ("M002", "全家便利店(徐家汇店)", "+8613700000102"),
)


# ----------------------------------------------------------------------------- catalogue


class CatalogueProduct(BaseModel):
    """One product of a catalogue file (the fields of ``boss_products``, plus the warehouse
    ids it stands for)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=64)
    category: str = Field(default="other", min_length=1, max_length=32)
    monthly_fee_fen: int = Field(ge=0)
    zone: Literal["41", "42"] | None = None
    trial_days: int = Field(default=0, ge=0, le=366)
    electronic_only: bool = False
    exclusive_group: str | None = Field(default=None, min_length=1, max_length=32)
    min_star_level: int = Field(default=0, ge=0, le=7)
    payment: Literal["prepaid", "postpaid"] | None = None
    rank: int = Field(default=0, ge=0)
    warehouse_ids: tuple[str, ...] | None = None  # None: the product_id itself

    @field_validator("product_id")
    @classmethod
    def _orderable(cls, value: str) -> str:
        # Subscribers order with "KT<product_id>" (the router casefolds what they type).
        if not all(ch.isascii() and (ch.isupper() or ch.isdigit() or ch in "-_") for ch in value):
            raise ValueError(f"{value!r}: use upper-case letters, digits, '-' or '_' "
                             "(subscribers order with KT<product_id>)")
        return value

    @field_validator("zone", mode="before")
    @classmethod
    def _zone_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def stands_for(self) -> tuple[str, ...]:
        """The warehouse product ids whose holdings are holdings of this product."""
        return (self.product_id,) if self.warehouse_ids is None else self.warehouse_ids

    def row(self) -> dict[str, Any]:
        """The ``boss_products`` row of this product."""
        values = self.model_dump(exclude={"warehouse_ids"})
        return {**values, "active": True}


class _CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    products: list[CatalogueProduct] = Field(min_length=1)


def load_catalogue(path: Path | str | None = None) -> list[CatalogueProduct]:
    """The products of a catalogue file (the packaged one by default), or an
    :class:`InputError` naming the file, the entry and the field that is wrong."""
    import yaml

    from jingxin.data.textfile import read_text

    source = Path(path) if path is not None else DEFAULT_CATALOGUE
    text = read_text(source, what="product catalogue", error=InputError)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{source}: a catalogue is a mapping with a 'products' list")
    try:
        products = _CatalogueFile.model_validate(raw).products
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(f"{source}: {_where(first['loc'])}: {first['msg']}") from None
    _check_unique(source, products)
    return products


def _where(loc: Sequence[Any]) -> str:
    """``('products', 3, 'zone')`` → ``products[3].zone``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "<root>"


def _check_unique(source: Path, products: Sequence[CatalogueProduct]) -> None:
    """A product id once; a warehouse id standing for one product only."""
    seen: dict[str, int] = {}
    claimed: dict[str, int] = {}
    for index, product in enumerate(products):
        if product.product_id in seen:
            raise InputError(f"{source}: products[{index}].product_id: {product.product_id!r} "
                             f"is already products[{seen[product.product_id]}]")
        seen[product.product_id] = index
        for warehouse_id in product.stands_for():
            if warehouse_id in claimed:
                raise InputError(
                    f"{source}: products[{index}].warehouse_ids: {warehouse_id!r} already "
                    f"stands for products[{claimed[warehouse_id]}]")
            claimed[warehouse_id] = index


# ----------------------------------------------------------------------------- seeding


@dataclass(frozen=True, slots=True)
class SeedTally:
    """What a seed wrote: catalogue products (and products or plans retired), accounts
    upserted, open holdings found (one already in the BOSS is kept as it is), and plans."""

    products: int
    retired: int
    accounts: int
    holdings: int
    plans: int = 0


def seed_boss(store: Store, warehouse: Warehouse, *, catalogue_path: Path | str | None = None,
              as_of: dt.date | None = None, limit: int | None = None) -> SeedTally:
    """Load the BOSS stand-in: products from the catalogue, then accounts and holdings of
    the warehouse's subscribers (the first ``limit`` by subscriber id; usage and holdings
    as of ``as_of``, default: the latest the warehouse has)."""
    if limit is not None and limit < 1:
        raise InputError(f"--limit: {limit} must be at least 1")
    products = load_catalogue(catalogue_path)
    plans = plan_rows(warehouse, taken={p.product_id for p in products})
    retired = seed_products(store, products, plans=plans)
    product_of = {wid: p.product_id for p in products for wid in p.stands_for()}
    accounts = holdings = 0
    for page in _subscriber_pages(warehouse, as_of=as_of, limit=limit):
        accounts += _write_chunks(store, BossAccount, page.accounts, key=("msisdn",),
                                  keep=("balance_fen",))
        rows = _holding_rows(warehouse, page, product_of=product_of, as_of=as_of)
        holdings += _write_chunks(store, BossHolding, rows, key=("msisdn", "product_id"),
                                  keep=("since",))
    return SeedTally(products=len(products), retired=retired, accounts=accounts,
                     holdings=holdings, plans=len(plans))  # fmt: skip


def seed_products(store: Store, products: Sequence[CatalogueProduct], *,
                  plans: Sequence[dict[str, Any]] = ()) -> int:  # fmt: skip
    """Upsert the catalogue and the ``plans`` (:func:`plan_rows`) into ``boss_products``
    and retire what neither has any more; one transaction. Returns the number retired."""
    rows = [p.row() for p in products] + list(plans)
    ids = [row["product_id"] for row in rows]
    with store.transaction() as session:
        connection = session.connection()
        _upsert(connection, BossProduct, rows, key=("product_id",))
        retired = connection.execute(
            update(BossProduct)
            .where(BossProduct.product_id.not_in(ids), BossProduct.active.is_(True))
            .values(active=False))  # fmt: skip
        return retired.rowcount or 0


def plan_rows(warehouse: Warehouse, *, taken: Collection[str] = ()) -> list[dict[str, Any]]:
    """The ``boss_products`` rows of the warehouse's plans (see the module docstring), or
    an :class:`InputError` naming two plans that share a code, or a plan whose code is
    ``taken`` by a catalogue product."""
    plans = warehouse.table("plans").select("plan_id", "name", "tier", "payment",
                                            "monthly_fee").order_by("plan_id")  # fmt: skip
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for plan in plans.to_pyarrow().to_pylist():
        plan_id, code = plan["plan_id"], plan_code(plan["plan_id"])
        if not code:
            raise InputError(f"warehouse plans: plan_id {plan_id!r} has no letter or digit "
                             "to order it by")  # fmt: skip
        if code in seen:
            raise InputError(f"warehouse plans: plan_id {plan_id!r} and {seen[code]!r} "
                             f"share the order code XY{code}")  # fmt: skip
        if code in taken:
            raise InputError(f"warehouse plans: plan_id {plan_id!r}: its code {code} is a "
                             "catalogue product's id")  # fmt: skip
        seen[code] = plan_id
        rows.append({"product_id": code, "name": plan["name"][:64], "category": PLAN_CATEGORY,
                     "monthly_fee_fen": round(plan["monthly_fee"] * 100), "zone": None,
                     "trial_days": 0, "electronic_only": False, "exclusive_group": None,
                     "min_star_level": 0, "payment": plan["payment"],
                     "rank": int(plan["tier"]), "active": True})  # fmt: skip
    return rows


def pseudo_balance_fen(subscriber_id: int) -> int:
    """A prepaid balance for a warehouse that knows none: the same for a subscriber on
    every seed, and spread (Knuth's multiplicative hash) so neighbours differ."""
    return (subscriber_id * 2_654_435_761) % 2**32 % (MAX_PSEUDO_BALANCE_FEN + 1)


@dataclass(frozen=True, slots=True)
class _Page:
    """One page of subscribers: their account rows and subscriber id → number."""

    first_id: int
    last_id: int
    accounts: list[dict[str, Any]]
    numbers: dict[int, str]


def _subscriber_pages(warehouse: Warehouse, *, as_of: dt.date | None,
                      limit: int | None) -> Iterator[_Page]:
    """Subscribers with their plan and latest usage, a page at a time by subscriber id."""
    after: int | None = None
    left = limit
    now = dt.datetime.now(dt.UTC)
    while left is None or left > 0:
        size = READ_PAGE if left is None else min(READ_PAGE, left)
        subscribers = _subscribers(warehouse, after=after, size=size).to_pyarrow().to_pylist()
        if not subscribers:
            return
        first, last = subscribers[0]["subscriber_id"], subscribers[-1]["subscriber_id"]
        used = _latest_usage(warehouse, first=first, last=last, as_of=as_of)
        accounts = [_account(s, used.get(s["subscriber_id"]), now) for s in subscribers]
        yield _Page(first_id=first, last_id=last, accounts=accounts,
                    numbers={s["subscriber_id"]: s["msisdn"] for s in subscribers})
        after = last
        if left is not None:
            left -= len(subscribers)
        if len(subscribers) < size:
            return


def _subscribers(warehouse: Warehouse, *, after: int | None, size: int) -> Any:
    """The next ``size`` subscribers after id ``after``, joined with their plan."""
    subscribers = warehouse.table("subscribers")
    if after is not None:
        subscribers = subscribers.filter(subscribers.subscriber_id > after)
    page = subscribers.order_by("subscriber_id").limit(size)
    plans = warehouse.table("plans")
    joined = page.left_join(plans, page.plan_id == plans.plan_id)
    return joined.select(
        subscriber_id=page.subscriber_id, msisdn=page.msisdn, plan_id=page.plan_id,
        payment=page.payment, status=page.status, star_level=page.star_level,
        plan_name=plans.name, data_quota_mb=plans.data_mb, voice_quota_min=plans.voice_min,
        sms_quota=plans.sms,
    ).order_by("subscriber_id")  # fmt: skip


def _latest_usage(warehouse: Warehouse, *, first: int, last: int,
                  as_of: dt.date | None) -> dict[int, dict[str, Any]]:
    """Subscriber id → their latest month of use (up to ``as_of``), for ids first..last."""
    if not warehouse.has_table("usage_monthly"):
        return {}
    usage = warehouse.table("usage_monthly")
    usage = usage.filter(usage.subscriber_id.between(first, last))
    if as_of is not None:
        usage = usage.filter(usage.month <= as_of)
    latest = usage.group_by("subscriber_id").aggregate(latest=usage.month.max())
    rows = usage.join(latest, [usage.subscriber_id == latest.subscriber_id,
                               usage.month == latest.latest]).select(
        subscriber_id=usage.subscriber_id, data_mb=usage.data_mb, voice_min=usage.voice_min,
        sms=usage.sms).to_pyarrow().to_pylist()  # fmt: skip
    return {r["subscriber_id"]: r for r in rows}


def _account(subscriber: dict[str, Any], used: dict[str, Any] | None,
             now: dt.datetime) -> dict[str, Any]:
    """The ``boss_accounts`` row of a subscriber (postpaid accounts are billed, balance 0)."""
    used = used or {}
    prepaid = subscriber["payment"] == "prepaid"
    return {
        "msisdn": subscriber["msisdn"],
        "plan_id": subscriber["plan_id"],
        "plan_name": subscriber["plan_name"] or "",
        "payment": subscriber["payment"],
        "status": subscriber["status"],
        "star_level": int(subscriber["star_level"] or 0),
        "balance_fen": pseudo_balance_fen(subscriber["subscriber_id"]) if prepaid else 0,
        "data_quota_mb": int(subscriber["data_quota_mb"] or 0),
        "data_used_mb": round(used.get("data_mb") or 0),
        "voice_quota_min": int(subscriber["voice_quota_min"] or 0),
        "voice_used_min": round(used.get("voice_min") or 0),
        "sms_quota": int(subscriber["sms_quota"] or 0),
        "sms_used": int(used.get("sms") or 0),
        "updated_at": now,
    }


def _holding_rows(warehouse: Warehouse, page: _Page, *, product_of: dict[str, str],
                  as_of: dt.date | None) -> list[dict[str, Any]]:
    """The page's open holdings of catalogue products, one per (number, product): the
    earliest start when several warehouse products stand for one catalogue product."""
    if not product_of or not warehouse.has_table("holdings"):
        return []
    holdings = warehouse.table("holdings")
    holdings = holdings.filter(holdings.subscriber_id.between(page.first_id, page.last_id),
                               holdings.product_id.isin(sorted(product_of)))
    if as_of is None:
        holdings = holdings.filter(holdings.end_date.isnull())
    else:
        holdings = holdings.filter(holdings.start_date <= as_of,
                                   holdings.end_date.isnull() | (holdings.end_date > as_of))
    found = holdings.select("subscriber_id", "product_id", "start_date").to_pyarrow()
    since: dict[tuple[str, str], dt.date] = {}
    for row in found.to_pylist():
        msisdn = page.numbers.get(row["subscriber_id"])
        if msisdn is None:  # beyond --limit within the id range
            continue
        key = (msisdn, product_of[row["product_id"]])
        since[key] = min(since.get(key, row["start_date"]), row["start_date"])
    return [{"msisdn": m, "product_id": p, "since": _midnight(day)}
            for (m, p), day in sorted(since.items())]  # fmt: skip


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), WAREHOUSE_ZONE).astimezone(dt.UTC)


def _write_chunks(store: Store, model: type, rows: Sequence[dict[str, Any]], *,
                  key: tuple[str, ...], keep: tuple[str, ...] = ()) -> int:
    """Upsert ``rows`` in chunks of :data:`CHUNK`, one transaction each."""
    for start in range(0, len(rows), CHUNK):
        with store.transaction() as session:
            _upsert(session.connection(), model, rows[start : start + CHUNK], key=key, keep=keep)
    return len(rows)


def _upsert(connection: Connection, model: type, rows: Sequence[dict[str, Any]], *,
            key: tuple[str, ...], keep: tuple[str, ...] = ()) -> None:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` every column but the key and ``keep``
    (SQLite and PostgreSQL); with nothing to update, ``DO NOTHING``."""
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model.__table__)  # type: ignore[attr-defined]
    changing = [c for c in rows[0] if c not in key and c not in keep]
    if changing:
        statement = statement.on_conflict_do_update(
            index_elements=list(key), set_={c: statement.excluded[c] for c in changing})
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(key))
    connection.execute(statement, list(rows))


# ----------------------------------------------------------------------------- demo


@dataclass(frozen=True, slots=True)
class DemoHall:
    staff: int
    merchants: int


def seed_demo_hall(store: Store) -> DemoHall:
    """The demo's staff (:data:`DEMO_STAFF`) and merchants (:data:`DEMO_MERCHANTS`), for
    the operator's own tenant; re-runnable (a merchant already there is left as it is)."""
    from jingxin.data.store.models.hall import Merchant
    from jingxin.hall.staff import add_staff
    from jingxin.hall.vouchers import add_merchant

    with store.transaction() as session:
        for code, name, branch in DEMO_STAFF:
            add_staff(session, code=code, name=name, branch=branch, tenant_id=DEFAULT_TENANT_ID)
        for merchant_id, name, msisdn in DEMO_MERCHANTS:
            if session.get(Merchant, merchant_id) is None:
                add_merchant(session, id=merchant_id, name=name, msisdn=msisdn,
                             tenant_id=DEFAULT_TENANT_ID)  # fmt: skip
    return DemoHall(staff=len(DEMO_STAFF), merchants=len(DEMO_MERCHANTS))
