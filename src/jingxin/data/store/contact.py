"""Recording who may be contacted, and loading it in bulk for policy.

Consent, opt-outs and the blacklist are evidence: rows are added (and consents revoked),
never edited. :func:`load_contact_states` reads everything policy needs about many
numbers in a few queries and returns plain :class:`ContactState` values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import (
    CONSENT_CATEGORIES,
    CONSENT_CHANNELS,
    OPT_OUT_SOURCES,
    BlacklistEntry,
    Consent,
    OptOut,
    SubscriberState,
    utc_now,
)
from jingxin.errors import InputError

# Bounded IN lists: SQLite caps bound parameters, and huge lists plan badly anywhere.
CHUNK = 500
STATE_FIELDS = frozenset(
    c.key for c in SubscriberState.__table__.columns if c.key not in ("msisdn", "updated_at")
)


@dataclass(frozen=True, slots=True)
class ContactState:
    """What the store knows about one number, as policy needs it."""

    msisdn: str
    consents: frozenset[tuple[str, str]] = frozenset()  # active (tenant_id, category)
    opt_outs: tuple[tuple[str | None, str | None], ...] = ()  # (tenant_id, category)
    blacklisted_by: frozenset[str | None] = frozenset()  # None: blacklisted for everyone
    in_service: bool = True
    complaint_sensitive: bool = False
    last_complaint_at: datetime | None = None
    roaming_country: str | None = None
    timezone: str | None = None
    invalid_since: datetime | None = None

    def has_consent(self, *, tenant_id: str, category: str) -> bool:
        return (tenant_id, category) in self.consents

    def opted_out(self, *, tenant_id: str, category: str) -> bool:
        """True if an opt-out covers this tenant and category (NULL category: marketing)."""
        for out_tenant, out_category in self.opt_outs:
            if out_tenant is not None and out_tenant != tenant_id:
                continue
            if out_category == category or (out_category is None and category == "marketing"):
                return True
        return False

    def blacklisted(self, *, tenant_id: str) -> bool:
        return None in self.blacklisted_by or tenant_id in self.blacklisted_by


def _require(value: str | None, allowed: Sequence[str], field: str) -> None:
    if value not in allowed:
        raise InputError(f"{field}: {value!r} is not one of {', '.join(allowed)}")


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
    _require(category, CONSENT_CATEGORIES, "consent.category")
    _require(channel, CONSENT_CHANNELS, "consent.channel")
    if not wording.strip():
        raise InputError("consent.wording: the wording the subscriber agreed to is required")
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
    _require(source, OPT_OUT_SOURCES, "opt_out.source")
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


def add_to_blacklist(
    session: Session,
    *,
    msisdn: str,
    added_by: str,
    reason: str = "",
    tenant_id: str | None = None,
) -> BlacklistEntry:
    """Blacklist ``msisdn`` for one tenant (or everyone); a second entry raises StoreError."""
    entry = BlacklistEntry(msisdn=msisdn, tenant_id=tenant_id, reason=reason, added_by=added_by)
    scope = f"tenant {tenant_id!r}" if tenant_id else "everyone"
    with store_errors(f"adding {msisdn} to the blacklist for {scope}"):
        session.add(entry)
        session.flush()
    return entry


def remove_from_blacklist(session: Session, *, msisdn: str, tenant_id: str | None = None) -> int:
    """Remove the entry for one tenant (or the global one); returns how many rows went."""
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
    unknown = sorted(set(changes) - STATE_FIELDS)
    if unknown:
        raise InputError(
            f"subscriber_state: unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(STATE_FIELDS))}"
        )
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


def load_contact_states(
    session: Session, *, msisdns: Iterable[str], tenant_id: str | None = None
) -> dict[str, ContactState]:
    """Contact state of every number given (numbers the store never saw get defaults).

    With ``tenant_id``, only that tenant's and the global rows are read.
    """
    wanted = list(dict.fromkeys(msisdns))
    rows: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"consents": set(), "opt_outs": [], "blacklisted_by": set()}
    )
    with store_errors("loading contact states"):
        for start in range(0, len(wanted), CHUNK):
            _load_chunk(session, wanted[start : start + CHUNK], tenant_id, rows)
    return {msisdn: _state(msisdn, rows.get(msisdn)) for msisdn in wanted}


def _load_chunk(
    session: Session, chunk: list[str], tenant_id: str | None, rows: dict[str, dict[str, Any]]
) -> None:
    consents = select(Consent.msisdn, Consent.tenant_id, Consent.category).where(
        Consent.msisdn.in_(chunk), Consent.revoked_at.is_(None)
    )
    opt_outs = select(OptOut.msisdn, OptOut.tenant_id, OptOut.category).where(
        OptOut.msisdn.in_(chunk)
    )
    blacklist = select(BlacklistEntry.msisdn, BlacklistEntry.tenant_id).where(
        BlacklistEntry.msisdn.in_(chunk)
    )
    if tenant_id is not None:
        consents = consents.where(Consent.tenant_id == tenant_id)
        opt_outs = opt_outs.where(or_(OptOut.tenant_id.is_(None), OptOut.tenant_id == tenant_id))
        blacklist = blacklist.where(
            or_(BlacklistEntry.tenant_id.is_(None), BlacklistEntry.tenant_id == tenant_id)
        )
    for msisdn, tenant, category in session.execute(consents):
        rows[msisdn]["consents"].add((tenant, category))
    for msisdn, tenant, category in session.execute(opt_outs):
        rows[msisdn]["opt_outs"].append((tenant, category))
    for msisdn, tenant in session.execute(blacklist):
        rows[msisdn]["blacklisted_by"].add(tenant)
    for state in session.scalars(select(SubscriberState).where(SubscriberState.msisdn.in_(chunk))):
        rows[state.msisdn]["state"] = state


def _state(msisdn: str, found: dict[str, Any] | None) -> ContactState:
    if found is None:
        return ContactState(msisdn=msisdn)
    state: SubscriberState | None = found.get("state")
    extra: dict[str, Any] = {}
    if state is not None:
        extra = {
            "in_service": state.in_service,
            "complaint_sensitive": state.complaint_sensitive,
            "last_complaint_at": state.last_complaint_at,
            "roaming_country": state.roaming_country,
            "timezone": state.timezone,
            "invalid_since": state.invalid_since,
        }
    return ContactState(
        msisdn=msisdn,
        consents=frozenset(found["consents"]),
        opt_outs=tuple(sorted(found["opt_outs"], key=lambda o: (o[0] or "", o[1] or ""))),
        blacklisted_by=frozenset(found["blacklisted_by"]),
        **extra,
    )
