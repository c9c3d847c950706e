"""Loading what policy needs from the operational store, and recording contacts.

- :func:`load_config` builds a :class:`PolicyConfig` from the ``tenants`` table (implied
  consent, time zone, and overrides under ``settings["policy"]``) on top of the settings.
- :func:`load_states` builds :class:`ContactState` values for many numbers in a few
  queries per chunk of numbers (for the single form and ``decide_many``).
- :func:`load_one` is the same for one number and one tenant in ONE statement (a UNION
  ALL of plain Core selects, no ORM objects), with the outbox row already queued under
  the idempotency key: the delivery entry's single-message path. :func:`load_many` is
  the same statement with IN lists, for a small batch (``deliver_many``).
- :func:`load_batch` joins a candidate table with the same facts as Arrow columns, as of
  ``now``, in DuckDB over the rows read from the store (for the batch form), and returns
  the ledger rows that the caps can reach.

Recording contacts is the delivery entry's (:mod:`jingxin.dispatch.deliver`) alone.

Only the ledger rows that caps can still reach are read: a send is never before ``now``,
so a month window never starts more than :data:`LEDGER_REACH_DAYS` days before it.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    MetaData,
    String,
    Table,
    bindparam,
    cast,
    literal_column,
    null,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from jingxin.data.store.bulk import in_array, probe
from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import (
    BlacklistEntry,
    Consent,
    LedgerEntry,
    Message,
    OptOut,
    SubscriberState,
    Tenant,
)
from jingxin.data.store.models.base import UtcDateTime
from jingxin.policy.columns import BATCH_SCHEMA, CANDIDATE_FIELDS, LEDGER_SCHEMA, TS
from jingxin.policy.config import PolicyConfig
from jingxin.policy.state import BlacklistMark, ConsentMark, ContactMark, ContactState, OptOutMark

CHUNK = 500  # bound IN lists: SQLite caps bound parameters
LEDGER_REACH_DAYS = 33


def load_config(session: Session, *, defaults: Mapping[str, Any] | None = None) -> PolicyConfig:
    """Every tenant's rules: ``defaults`` (e.g. the policy settings), then the tenant's own."""
    with store_errors("reading the tenants' policy settings"):
        tenants = list(session.scalars(select(Tenant)))
    overrides = {}
    for tenant in tenants:
        own = dict((tenant.settings or {}).get("policy") or {})
        own.setdefault("implied_consent", tenant.implied_consent)
        own.setdefault("default_timezone", tenant.timezone)
        overrides[tenant.id] = own
    return PolicyConfig.build(overrides, defaults=dict(defaults or {}))


def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start : start + CHUNK])


def load_states(
    session: Session, *, msisdns: Iterable[str], now: datetime, keys: Iterable[str] = ()
) -> dict[str, ContactState]:
    """Contact state of every number (defaults for numbers the store never saw).

    ``used_keys`` holds those of ``keys`` already in the ledger for that number.
    """
    wanted = list(dict.fromkeys(m for m in msisdns if m))
    key_set = set(keys)
    found: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    cutoff = now.date() - timedelta(days=LEDGER_REACH_DAYS)
    with store_errors("loading contact states"):
        for chunk in _chunks(wanted):
            for row in session.scalars(select(Consent).where(Consent.msisdn.in_(chunk))):
                found[row.msisdn]["consents"].append(
                    ConsentMark(
                        row.tenant_id,
                        row.category,
                        row.given_at,
                        row.revoked_at,
                        row.channel,
                        row.wording,
                    )
                )
            for row in session.scalars(select(OptOut).where(OptOut.msisdn.in_(chunk))):
                found[row.msisdn]["opt_outs"].append(
                    OptOutMark(row.tenant_id, row.category, row.recorded_at)
                )
            for row in session.scalars(
                select(BlacklistEntry).where(BlacklistEntry.msisdn.in_(chunk))
            ):
                found[row.msisdn]["blacklist"].append(BlacklistMark(row.tenant_id, row.added_at))
            for row in session.scalars(
                select(LedgerEntry).where(
                    LedgerEntry.msisdn.in_(chunk), LedgerEntry.local_date >= cutoff
                )
            ):
                found[row.msisdn]["contacts"].append(
                    ContactMark(row.category, row.local_date, row.campaign_id, row.tenant_id)
                )
            if key_set:
                query = select(LedgerEntry.msisdn, LedgerEntry.idempotency_key).where(
                    LedgerEntry.msisdn.in_(chunk), LedgerEntry.idempotency_key.in_(sorted(key_set))
                )
                for msisdn, key in session.execute(query):
                    found[msisdn]["used_keys"].append(key)
            for row in session.scalars(
                select(SubscriberState).where(SubscriberState.msisdn.in_(chunk))
            ):
                found[row.msisdn]["subscriber"].append(row)
    return {m: _state(m, found.get(m)) for m in wanted}


def load_one(connection: Any, *, msisdn: str, tenant_id: str, key: str,
             now: datetime) -> tuple[ContactState, int | None]:  # fmt: skip
    """(the contact state of ``msisdn`` as ``tenant_id``'s candidate sees it, the id of the
    message already queued under ``key``) in one statement on ``connection`` (a Session or
    a Connection). The state holds what :func:`load_states` would give for everything
    policy reads about that tenant: other tenants' consents, opt-outs and blacklist
    entries are left out (they never apply), every tenant's reachable contacts kept."""
    cutoff = now.date() - timedelta(days=LEDGER_REACH_DAYS)
    with store_errors("loading a contact state"):
        rows = connection.execute(_state_statement(many=False), {
            "msisdn": msisdn, "tenant": tenant_id, "key": key, "cutoff": cutoff})  # fmt: skip
        found, first = _gather(rows, keys={key}, cutoff=cutoff)
    return _state(msisdn, found.get(msisdn)), first.get(key)


def load_many(connection: Any, *, pairs: Sequence[tuple[str, str]], tenants: Iterable[str],
              now: datetime) -> tuple[dict[str, ContactState], dict[str, int]]:  # fmt: skip
    """:func:`load_one` for many (number, idempotency key) pairs and the tenants asking:
    (the state of every number, the message already queued under each key that has one),
    in one statement per :data:`CHUNK` numbers (a number's keys go with it)."""
    cutoff = now.date() - timedelta(days=LEDGER_REACH_DAYS)
    keys_of: dict[str, set[str]] = defaultdict(set)
    for msisdn, key in pairs:
        keys_of[msisdn].add(key)
    found: dict[str, dict[str, list]] = {}
    first: dict[str, int] = {}
    with store_errors(f"loading {len(keys_of)} contact states"):
        for chunk in _chunks(list(keys_of)):
            keys = set().union(*(keys_of[m] for m in chunk))
            rows = connection.execute(_state_statement(many=True, arrays=_postgresql(connection)), {
                "msisdns": chunk, "tenants": sorted(set(tenants)), "keys": sorted(keys),
                "cutoff": cutoff})  # fmt: skip
            more, queued = _gather(rows, keys=keys, cutoff=cutoff)
            found.update(more)
            first.update(queued)
    return {m: _state(m, found.get(m)) for m in keys_of}, first


def _postgresql(connection: Any) -> bool:
    """Whether ``connection`` (a Connection or a Session) talks to PostgreSQL."""
    bind = connection.get_bind() if hasattr(connection, "get_bind") else connection
    return bind.dialect.name == "postgresql"


def _gather(rows: Iterable[Any], *, keys: set[str], cutoff: date
            ) -> tuple[dict[str, dict[str, list]], dict[str, int]]:  # fmt: skip
    """The rows of :func:`_state_statement` as facts by number, and messages by key."""
    found: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    first: dict[str, int] = {}
    for kind, msisdn, tenant, category, s1, s2, at1, at2, day, number, b1, b2 in rows:
        if kind == "m":
            first[s1] = number
            continue
        facts = found[msisdn]
        if kind == "c":
            facts["consents"].append(ConsentMark(tenant, category, at1, at2, s1, s2))
        elif kind == "o":
            facts["opt_outs"].append(OptOutMark(tenant, category, at1))
        elif kind == "b":
            facts["blacklist"].append(BlacklistMark(tenant, at1))
        elif kind == "s":
            facts["subscriber"].append(_Subscriber(b1, at2, b2, at1, s1, s2))
        else:  # "l": a ledger row, reachable by the caps or recorded under a key
            if s1 in keys:
                facts["used_keys"].append(s1)
            if day >= cutoff:
                facts["contacts"].append(ContactMark(category, day, number, tenant))
    return found, first


@dataclass(frozen=True, slots=True)
class _Subscriber:
    """A ``subscriber_state`` row's fields policy reads (as :func:`_state` takes them)."""

    in_service: bool
    invalid_since: datetime | None
    complaint_sensitive: bool
    last_complaint_at: datetime | None
    timezone: str | None
    roaming_country: str | None


@functools.cache
def _state_statement(*, many: bool, arrays: bool = False) -> Any:
    """The UNION ALL behind :func:`load_one` (``many``: :func:`load_many`, the same with IN
    lists), built once (SQLAlchemy then caches its SQL). Every branch has the same twelve
    columns: kind, number, tenant, category, two texts, two instants, a date, a number, two
    flags; the NULLs are typed so PostgreSQL can unify.

    ``arrays`` (PostgreSQL): each list is one array parameter, so the statement has one
    text whatever the batch (prepared once) - expanded IN lists gave a new text of ~1,800
    parameters for every batch size, which psycopg parsed again each time (2.7 ms a batch
    of 200 replies), and the planner with them. The tables read by number are then read
    number by number (``by_number``: a probe of the number's index), whatever the
    planner's statistics say: as semi-joins, a young table was hashed whole for every
    batch (opt_outs: 2.7 ms for 5 numbers among 14,000 rows, growing with the table)."""
    def none(kind: Any) -> Any:
        return cast(null(), kind)

    def among(column: Any, name: str) -> Any:
        if many and arrays:
            return in_array(column, bindparam(name + "s", type_=ARRAY(String())))
        if many:
            return column.in_(bindparam(name + "s", expanding=True))
        return column == bindparam(name)

    def by_number(table: Table, *, tenant: bool = False) -> tuple[Any, Any]:
        """(the rows, the FROM that yields them) of ``table`` for the asked numbers: on
        PostgreSQL one index probe a number (:func:`~jingxin.data.store.bulk.probe`; with
        ``tenant``, one a (number, tenant asked) pair, for an index on (tenant_id,
        msisdn)); else the table itself, filtered by ``numbered``."""
        if not (many and arrays):
            return table, table
        keys = {"msisdn": bindparam("msisdns", type_=ARRAY(String()))}
        if tenant:
            keys["tenant_id"] = bindparam("tenants", type_=ARRAY(String()))
        return probe(table, keys, name=table.name)

    cutoff = bindparam("cutoff", type_=Date)
    text_, at, day, num, flag = String(), UtcDateTime(), Date(), BigInteger(), Boolean()

    def kind(code: str) -> Any:
        return literal_column(f"'{code}'", String)

    def numbered(rows: Any, *more: Any) -> list[Any]:
        """The conditions that a probe by number applies already."""
        return [among(rows.c.msisdn, "msisdn"), *more] if isinstance(rows, Table) else []

    consents, c_from = by_number(Consent.__table__, tenant=True)  # its index: (tenant, number)
    opt_outs, o_from = by_number(OptOut.__table__)
    blacklist, b_from = by_number(BlacklistEntry.__table__)
    states, s_from = by_number(SubscriberState.__table__)
    ledger, l_from = by_number(LedgerEntry.__table__)
    c, o, b, st, led = consents.c, opt_outs.c, blacklist.c, states.c, ledger.c
    branches = [
        select(kind("m").label("kind"), Message.msisdn.label("msisdn"),
               none(text_).label("tenant"), none(text_).label("category"),
               Message.idempotency_key.label("s1"), none(text_).label("s2"),
               none(at).label("at1"), none(at).label("at2"), none(day).label("day"),
               cast(Message.id, num).label("number"), none(flag).label("b1"),
               none(flag).label("b2"))
        .where(among(Message.idempotency_key, "key")),
        select(kind("c"), c.msisdn, c.tenant_id, c.category, c.channel, c.wording,
               c.given_at, c.revoked_at, none(day), none(num), none(flag), none(flag))
        .select_from(c_from)
        .where(*numbered(consents, among(c.tenant_id, "tenant"))),
        select(kind("o"), o.msisdn, o.tenant_id, o.category, none(text_), none(text_),
               o.recorded_at, none(at), none(day), none(num), none(flag), none(flag))
        .select_from(o_from)
        .where(or_(o.tenant_id.is_(None), among(o.tenant_id, "tenant")),
               *numbered(opt_outs)),
        select(kind("b"), b.msisdn, b.tenant_id, none(text_), none(text_), none(text_),
               b.added_at, none(at), none(day), none(num), none(flag), none(flag))
        .select_from(b_from)
        .where(or_(b.tenant_id.is_(None), among(b.tenant_id, "tenant")),
               *numbered(blacklist)),
        select(kind("s"), st.msisdn, none(text_), none(text_), st.timezone,
               st.roaming_country, st.last_complaint_at, st.invalid_since, none(day),
               none(num), st.in_service, st.complaint_sensitive)
        .select_from(s_from)
        .where(*numbered(states)),
        select(kind("l"), led.msisdn, led.tenant_id, led.category, led.idempotency_key,
               none(text_), none(at), none(at), led.local_date, cast(led.campaign_id, num),
               none(flag), none(flag))
        .select_from(l_from)
        .where(or_(led.local_date >= cutoff, among(led.idempotency_key, "key")),
               *numbered(ledger)),
    ]  # fmt: skip
    return union_all(*branches)


def _state(msisdn: str, found: Mapping[str, list] | None) -> ContactState:
    if not found:
        return ContactState(msisdn=msisdn)
    network: dict[str, Any] = {}
    for row in found.get("subscriber", []):
        network = {
            "in_service": row.in_service,
            "invalid_since": row.invalid_since,
            "complaint_sensitive": row.complaint_sensitive,
            "last_complaint_at": row.last_complaint_at,
            "timezone": row.timezone,
            "roaming_country": row.roaming_country,
        }
    return ContactState(
        msisdn=msisdn,
        blacklist=tuple(found.get("blacklist", [])),
        consents=tuple(found.get("consents", [])),
        opt_outs=tuple(found.get("opt_outs", [])),
        contacts=tuple(found.get("contacts", [])),
        used_keys=frozenset(found.get("used_keys", [])),
        **network,
    )


def _raw_tables(session: Session, msisdns: list[str], cutoff: date) -> dict[str, pa.Table]:
    """The store rows about ``msisdns`` as Arrow tables (one per store table)."""
    queries = {
        "consents": select(
            Consent.msisdn,
            Consent.tenant_id,
            Consent.category,
            Consent.given_at,
            Consent.revoked_at,
        ),
        "opt_outs": select(OptOut.msisdn, OptOut.tenant_id, OptOut.category, OptOut.recorded_at),
        "blacklist": select(
            BlacklistEntry.msisdn, BlacklistEntry.tenant_id, BlacklistEntry.added_at
        ),
        "subscribers": select(
            SubscriberState.msisdn,
            SubscriberState.in_service,
            SubscriberState.invalid_since,
            SubscriberState.complaint_sensitive,
            SubscriberState.last_complaint_at,
            SubscriberState.timezone,
            SubscriberState.roaming_country,
        ),
        "ledger": select(
            LedgerEntry.msisdn,
            LedgerEntry.category,
            LedgerEntry.campaign_id,
            LedgerEntry.local_date,
            LedgerEntry.idempotency_key,
        ).where(LedgerEntry.local_date >= cutoff),
    }
    tables = {}
    with store_errors("loading contact state for a batch"):
        numbers = _numbers_filter(session, msisdns)
        for name, query in queries.items():
            table_model = query.get_final_froms()[0]
            rows = session.execute(query.where(numbers(table_model.c.msisdn))).all()
            columns = list(query.selected_columns.keys())
            tables[name] = pa.table(
                {
                    c: pa.array([r[i] for r in rows], type=_arrow_type(c))
                    for i, c in enumerate(columns)
                }
            )
    return tables


NumbersFilter = Callable[[ColumnElement[str]], ColumnElement[bool]]


def _numbers_filter(session: Session, msisdns: list[str]) -> NumbersFilter:
    """How each state query is restricted to the batch's numbers: a few numbers as one IN
    list; a campaign chunk (tens of thousands) as a semi-join to a temporary table of the
    numbers, filled once per batch (COPY on PostgreSQL). Chunked IN lists of 500 made a
    query per 500 numbers per table: most of the load time."""
    if len(msisdns) <= CHUNK:
        return lambda column: column.in_(msisdns)
    from jingxin.data.store import bulk

    connection = session.connection()
    if session.get_bind().dialect.name == "postgresql":
        bulk.load_temp(connection, name=_NUMBERS.name, definition="(msisdn TEXT PRIMARY KEY)",
                       table=pa.table({"msisdn": msisdns}))  # fmt: skip
        connection.execute(text(f"ANALYZE {_NUMBERS.name}"))
    else:
        connection.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {_NUMBERS.name} "
                                "(msisdn TEXT PRIMARY KEY)"))  # fmt: skip
        connection.execute(_NUMBERS.delete())
        # One JSON array parameter, unpacked by SQLite: 4x faster than executemany.
        connection.connection.driver_connection.execute(
            f"INSERT OR IGNORE INTO {_NUMBERS.name} SELECT value FROM json_each(?)",
            (json.dumps(msisdns),))  # fmt: skip
    numbers = select(_NUMBERS.c.msisdn)
    return lambda column: column.in_(numbers)


# The batch's numbers; a TEMP table lives in the connection (and session) that made it.
_NUMBERS = Table("policy_batch_numbers", MetaData(), Column("msisdn", String, primary_key=True),
                 prefixes=["TEMPORARY"])  # fmt: skip


def _arrow_type(column: str) -> pa.DataType:
    if column.endswith("_at") or column == "invalid_since":
        return TS
    if column in ("in_service", "complaint_sensitive"):
        return pa.bool_()
    if column == "campaign_id":
        return pa.int64()
    if column == "local_date":
        return pa.date32()
    return pa.string()


def load_batch(
    session: Session, *, candidates: pa.Table, now: datetime
) -> tuple[pa.Table, pa.Table]:
    """(candidates with their state columns as of ``now``, reachable ledger rows)."""
    from jingxin.policy.state_join import join_state

    msisdns = candidates.column("msisdn").drop_null().unique().to_pylist()
    cutoff = now.date() - timedelta(days=LEDGER_REACH_DAYS)
    raw = _raw_tables(session, msisdns, cutoff)
    table = join_state(candidates.select([f.name for f in CANDIDATE_FIELDS]), raw, now=now)
    ledger = raw["ledger"].select(LEDGER_SCHEMA.names).cast(LEDGER_SCHEMA)
    return table.cast(BATCH_SCHEMA), ledger
