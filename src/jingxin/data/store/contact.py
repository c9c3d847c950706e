"""Recording who may be contacted: consent, opt-outs, the blacklist, subscriber state.

Consent, opt-outs and the blacklist are evidence: rows are added (and consents revoked),
never edited, each with the instant it took effect (``at=``; default now) so a decision
as of an earlier instant does not see it. Policy reads them back, as of its decision
time, through :mod:`jingxin.data.store.policy_state`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, update
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

STATE_FIELDS = frozenset(
    c.key for c in SubscriberState.__table__.columns if c.key not in ("msisdn", "updated_at")
)


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
    at: datetime | None = None,
) -> BlacklistEntry:
    """Blacklist ``msisdn`` for one tenant (or everyone) from ``at`` (default: now); a
    second entry raises StoreError."""
    entry = BlacklistEntry(msisdn=msisdn, tenant_id=tenant_id, reason=reason,
                           added_by=added_by, added_at=at or utc_now())  # fmt: skip
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
