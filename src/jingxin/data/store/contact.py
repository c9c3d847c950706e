"""Recording who may be contacted: consent, opt-outs, the blacklist, subscriber state.

Consent, opt-outs and the blacklist are evidence: rows are added (and consents revoked),
never edited, each with the instant it took effect (``at=``; default now) so a decision
as of an earlier instant does not see it. Policy reads them back, as of its decision
time, through :mod:`jingxin.data.store.policy_state`.

Every function here checks its input with :mod:`jingxin.data.validate` before writing,
so each caller (CLI, API, the MO unsubscribe handler) stores the same thing: the number
in E.164 (``13800138000`` → ``+8613800138000``), a known tenant, a category and a source
from their lists, an ISO country. Bad input raises InputError and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session

from jingxin.data.store.bulk import among, array_values, unnest_arrays
from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import (
    CONSENT_CHANNELS,
    DEFAULT_TENANT_ID,
    BlacklistEntry,
    Consent,
    OptOut,
    SubscriberState,
    utc_now,
)
from jingxin.data.store.tenants import ensure_default_tenant, get_tenant, list_tenants
from jingxin.data.validate import (
    CONSENT_CATEGORIES,
    OPT_OUT_CATEGORIES,
    OPT_OUT_SOURCES,
    valid_choice,
    valid_country,
    valid_msisdn,
    valid_tenant_id,
    valid_timezone,
)
from jingxin.errors import InputError

STATE_FIELDS = frozenset(
    c.key for c in SubscriberState.__table__.columns if c.key not in ("msisdn", "updated_at")
)


def _require(value: str | None, allowed: Sequence[str], field: str) -> None:
    valid_choice(value, allowed=allowed, field=field)


def require_tenant(session: Session, *, tenant_id: str, field: str = "tenant") -> str:
    """``tenant_id`` if it is well formed and in the store (the operator's own tenant is
    created on first use); else an InputError listing the known tenants."""
    valid_tenant_id(tenant_id, field=field)
    if tenant_id == DEFAULT_TENANT_ID:
        ensure_default_tenant(session)
        return tenant_id
    if get_tenant(session, tenant_id=tenant_id) is None:
        known = ", ".join(t.id for t in list_tenants(session)) or "none yet"
        raise InputError(f"{field}: unknown tenant {tenant_id!r} (known: {known})")
    return tenant_id


def record_consent(
    session: Session,
    *,
    tenant_id: str,
    msisdn: str,
    category: str,
    channel: str,
    wording: str,
    given_at: datetime | None = None,
) -> Consent:
    """Record that ``msisdn`` agreed to ``category`` messages from ``tenant_id``."""
    msisdn = valid_msisdn(msisdn, field="consent.msisdn")
    _require(category, CONSENT_CATEGORIES, "consent.category")
    _require(channel, CONSENT_CHANNELS, "consent.channel")
    if not wording.strip():
        raise InputError("consent.wording: the wording the subscriber agreed to is required")
    require_tenant(session, tenant_id=tenant_id, field="consent.tenant")
    consent = Consent(
        tenant_id=tenant_id,
        msisdn=msisdn,
        category=category,
        channel=channel,
        wording=wording,
        given_at=given_at or utc_now(),
    )
    with store_errors(f"recording consent of {msisdn} for tenant {tenant_id!r}"):
        session.add(consent)
        session.flush()
    return consent


def revoke_consent(
    session: Session,
    *,
    tenant_id: str,
    msisdn: str,
    category: str | None = None,
    at: datetime | None = None,
) -> int:
    """Revoke the active consents (of one category, or all); returns how many."""
    msisdn = valid_msisdn(msisdn, field="consent.msisdn")
    valid_tenant_id(tenant_id, field="consent.tenant")
    if category is not None:
        _require(category, CONSENT_CATEGORIES, "consent.category")
    conditions = [
        Consent.tenant_id == tenant_id,
        Consent.msisdn == msisdn,
        Consent.revoked_at.is_(None),
    ]
    if category is not None:
        conditions.append(Consent.category == category)
    with store_errors(f"revoking consent of {msisdn} for tenant {tenant_id!r}"):
        result = session.execute(
            update(Consent).where(*conditions).values(revoked_at=at or utc_now()),
            execution_options={"synchronize_session": False},
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


def record_opt_out(
    session: Session,
    *,
    msisdn: str,
    source: str,
    tenant_id: str | None = None,
    category: str | None = None,
    note: str | None = None,
    at: datetime | None = None,
) -> OptOut:
    """Record an unsubscribe; no tenant means from everyone, no category all marketing."""
    msisdn = valid_msisdn(msisdn, field="opt_out.msisdn")
    _require(source, OPT_OUT_SOURCES, "opt_out.source")
    if category is not None:
        _require(category, OPT_OUT_CATEGORIES, "opt_out.category")
    if tenant_id is not None:
        require_tenant(session, tenant_id=tenant_id, field="opt_out.tenant")
    opt_out = OptOut(
        msisdn=msisdn,
        tenant_id=tenant_id,
        category=category,
        source=source,
        note=note,
        recorded_at=at or utc_now(),
    )
    with store_errors(f"recording the opt-out of {msisdn}"):
        session.add(opt_out)
        session.flush()
    return opt_out


def record_opt_outs(
    session: Session,
    *,
    entries: Sequence[Mapping[str, Any]],
    source: str,
    at: datetime | None = None,
) -> int:
    """Record several unsubscribes in one insert, by the rules of :func:`record_opt_out`:
    each entry has ``msisdn`` and optionally ``tenant_id``, ``category`` and ``note``.
    Every entry is checked first: one bad entry raises InputError and writes nothing.
    Returns how many were recorded."""
    rows = _opt_out_rows(session, entries=entries, source=source, at=at)
    if rows:
        with store_errors(f"recording {len(rows)} opt-outs"):
            session.execute(insert(OptOut), rows)
    return len(rows)


# PostgreSQL: the noted opt-outs not yet recorded, inserted by one statement (arrays: one
# text whatever the batch), answering which went in. ``OFFSET 0`` keeps the NOT EXISTS a
# probe of the number's index per entry (PostgreSQL does not turn a subquery with an OFFSET
# into a join): as an anti-join, the generic plan psycopg prepares hashed the whole
# opt_outs table for every batch (a young table without statistics: 4 ms at 14,000
# opt-outs, growing with the table).
_NOTED_COLUMNS = ("msisdn", "tenant_id", "category", "source", "recorded_at", "note")
_NOTED_PG = text(
    f"INSERT INTO opt_outs ({', '.join(_NOTED_COLUMNS)}) "
    f"SELECT {', '.join(f'u.{c}' for c in _NOTED_COLUMNS)} "
    f"FROM {unnest_arrays(OptOut.__table__, _NOTED_COLUMNS, prefix='', alias='u')} "
    "WHERE NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.msisdn = u.msisdn AND o.note = u.note "
    "OFFSET 0) RETURNING msisdn, note"
)


def record_noted_opt_outs(
    session: Session,
    *,
    entries: Sequence[Mapping[str, Any]],
    source: str,
    at: datetime | None = None,
    check_tenants: bool = True,
) -> set[tuple[str, str]]:
    """:func:`record_opt_outs` for entries that each carry a ``note`` naming what asked for
    them (an MO): an entry whose number already has an opt-out with that note is skipped,
    so running it again records nothing twice. Returns the (E.164 number, note) pairs
    recorded now. On PostgreSQL one statement; elsewhere a lookup and an insert.

    ``check_tenants=False`` records an opt-out whatever its tenant (the unsubscribe
    handler's: the tenant is the one whose message the subscriber answered, or the
    operator's own; a subscriber's no is kept even for a tenant the store lost, as the
    table's missing foreign key says) - and saves the tenant read of every batch."""
    rows = _opt_out_rows(session, entries=entries, source=source, at=at,
                         check_tenants=check_tenants)  # fmt: skip
    if not rows:
        return set()
    with store_errors(f"recording {len(rows)} opt-outs"):
        if session.get_bind().dialect.name == "postgresql":
            arrays = array_values(rows, _NOTED_COLUMNS, prefix="")
            return {(msisdn, note) for msisdn, note in session.execute(_NOTED_PG, arrays)}

        conn = session.connection()
        done = {(msisdn, note) for msisdn, note in session.execute(select(OptOut.msisdn, OptOut.note).where(
            among(conn, OptOut.msisdn, sorted({r["msisdn"] for r in rows})),
            among(conn, OptOut.note, sorted({r["note"] for r in rows}))))}  # fmt: skip
        fresh = [row for row in rows if (row["msisdn"], row["note"]) not in done]
        if fresh:
            session.execute(insert(OptOut), fresh)
        return {(row["msisdn"], row["note"]) for row in fresh}


def _opt_out_rows(session: Session, *, entries: Sequence[Mapping[str, Any]], source: str,
                  at: datetime | None, check_tenants: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """The rows for ``entries``, each checked (InputError for the first bad one)."""
    from jingxin.data.msisdn import e164_of_few

    _require(source, OPT_OUT_SOURCES, "opt_out.source")
    recorded_at = at or utc_now()
    raw = ["" if e.get("msisdn") is None else str(e["msisdn"]) for e in entries]
    # The column form of valid_msisdn's rules (e164_of_few: by hand for a few, vectorised
    # for many); a number it refuses goes through valid_msisdn itself for the one-line
    # error naming it.
    numbers = e164_of_few(raw)
    rows = []
    for entry, text_, msisdn in zip(entries, raw, numbers, strict=True):
        category, tenant_id = entry.get("category"), entry.get("tenant_id")
        if category is not None:
            _require(category, OPT_OUT_CATEGORIES, "opt_out.category")
        rows.append({"msisdn": msisdn or valid_msisdn(text_, field="opt_out.msisdn"),
                     "tenant_id": tenant_id, "category": category, "source": source,
                     "note": entry.get("note"), "recorded_at": recorded_at})  # fmt: skip
    for tenant_id in sorted({r["tenant_id"] for r in rows if r["tenant_id"] is not None}):
        if check_tenants:
            require_tenant(session, tenant_id=tenant_id, field="opt_out.tenant")
        else:
            valid_tenant_id(tenant_id, field="opt_out.tenant")
    return rows


def add_to_blacklist(
    session: Session,
    *,
    msisdn: str,
    added_by: str,
    reason: str = "",
    tenant_id: str | None = None,
    at: datetime | None = None,
) -> BlacklistEntry:
    """Blacklist ``msisdn`` for one tenant (or everyone) from ``at`` (default: now); a
    second entry raises StoreError."""
    msisdn = valid_msisdn(msisdn, field="blacklist.msisdn")
    if tenant_id is not None:
        require_tenant(session, tenant_id=tenant_id, field="blacklist.tenant")
    entry = BlacklistEntry(msisdn=msisdn, tenant_id=tenant_id, reason=reason,
                           added_by=added_by, added_at=at or utc_now())  # fmt: skip
    scope = f"tenant {tenant_id!r}" if tenant_id else "everyone"
    with store_errors(f"adding {msisdn} to the blacklist for {scope}"):
        session.add(entry)
        session.flush()
    return entry


def remove_from_blacklist(session: Session, *, msisdn: str, tenant_id: str | None = None) -> int:
    """Remove the entry for one tenant (or the global one); returns how many rows went."""
    msisdn = valid_msisdn(msisdn, field="blacklist.msisdn")
    if tenant_id is not None:
        valid_tenant_id(tenant_id, field="blacklist.tenant")
    scope = (
        BlacklistEntry.tenant_id.is_(None)
        if tenant_id is None
        else BlacklistEntry.tenant_id == tenant_id
    )
    with store_errors(f"removing {msisdn} from the blacklist"):
        result = session.execute(
            delete(BlacklistEntry).where(BlacklistEntry.msisdn == msisdn, scope),
            execution_options={"synchronize_session": False},
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


def update_subscriber_state(session: Session, *, msisdn: str, **changes: Any) -> SubscriberState:
    """Create or update the state of one number (fields as in ``subscriber_state``)."""
    msisdn = valid_msisdn(msisdn, field="subscriber_state.msisdn")
    unknown = sorted(set(changes) - STATE_FIELDS)
    if unknown:
        raise InputError(
            f"subscriber_state: unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(STATE_FIELDS))}"
        )
    if changes.get("roaming_country") is not None:
        changes["roaming_country"] = valid_country(
            changes["roaming_country"], field="subscriber_state.roaming_country")
    if changes.get("timezone") is not None:
        valid_timezone(changes["timezone"], field="subscriber_state.timezone")
    with store_errors(f"updating the subscriber state of {msisdn}"):
        state = session.get(SubscriberState, msisdn)
        if state is None:
            state = SubscriberState(msisdn=msisdn)
            session.add(state)
        for key, value in changes.items():
            setattr(state, key, value)
        state.updated_at = utc_now()
        session.flush()
    return state
