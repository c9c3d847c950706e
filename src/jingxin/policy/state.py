"""What policy knows about one subscriber (:class:`ContactState`) and its view at an instant.

:class:`ContactState` is built from the store (``data.store.policy_state``) or by a test: the
subscriber's network state, blacklist entries, consents, opt-outs, complaints, clock and the
contacts already made. :func:`state_view` reduces it, for one candidate at one instant, to
the handful of scalars the rules read (:class:`StateView`). The batch form receives exactly
these scalars as Arrow columns (:data:`VIEW_FIELDS`), so both forms read the same facts.

Everything recorded holds from the moment it was recorded: an opt-out, blacklist entry,
invalid-number mark or consent stamped after ``now`` does not count yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from jingxin.domain.candidate import Candidate, Category
from jingxin.policy.localtime import to_us


@dataclass(frozen=True, slots=True)
class BlacklistMark:
    tenant_id: str | None  # None: nobody may message the number
    added_at: datetime


@dataclass(frozen=True, slots=True)
class ConsentMark:
    tenant_id: str
    category: str
    given_at: datetime
    revoked_at: datetime | None = None
    channel: str = "sms"
    wording: str = ""


@dataclass(frozen=True, slots=True)
class OptOutMark:
    tenant_id: str | None  # None: from every tenant
    category: str | None  # None: from all marketing
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ContactMark:
    """One contact in the ledger: counted against caps on its local date."""

    category: str
    local_date: date
    campaign_id: int | None = None
    tenant_id: str | None = None


@dataclass(frozen=True, slots=True)
class ContactState:
    """Everything policy must respect about one number. Defaults: a clean, unknown number."""

    msisdn: str
    in_service: bool = True
    invalid_since: datetime | None = None
    blacklist: tuple[BlacklistMark, ...] = ()
    consents: tuple[ConsentMark, ...] = ()
    opt_outs: tuple[OptOutMark, ...] = ()
    complaint_sensitive: bool = False
    last_complaint_at: datetime | None = None
    timezone: str | None = None
    roaming_country: str | None = None
    contacts: tuple[ContactMark, ...] = ()
    used_keys: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StateView:
    """The facts about one candidate's subscriber as of one instant (one batch row)."""

    in_service: bool = True
    invalid: bool = False
    blacklisted: bool = False
    key_used: bool = False
    opted_out: bool = False
    has_consent: bool = False
    complaint_sensitive: bool = False
    last_complaint_us: int | None = None
    timezone: str | None = None
    roaming_country: str | None = None


VIEW_FIELDS = tuple(StateView.__slots__)  # the state columns of a batch row


def _at_or_before(moment: datetime | None, now_us: int) -> bool:
    return moment is not None and to_us(moment) <= now_us


def opt_out_applies(mark: OptOutMark, *, tenant_id: str, category: str) -> bool:
    """Does this opt-out cover that tenant and category (time aside)?"""
    if category == Category.OTP:
        return False  # an OTP is asked for by the subscriber in that very moment
    if mark.tenant_id is not None and mark.tenant_id != tenant_id:
        return False
    if mark.category is None:
        return category == Category.MARKETING
    return mark.category == category


def consent_valid(mark: ConsentMark, *, tenant_id: str, category: str, now_us: int) -> bool:
    if mark.tenant_id != tenant_id or mark.category != category:
        return False
    if not _at_or_before(mark.given_at, now_us):
        return False
    return mark.revoked_at is None or to_us(mark.revoked_at) > now_us


def state_view(candidate: Candidate, state: ContactState, now_us: int) -> StateView:
    """Reduce ``state`` to the facts that matter for ``candidate`` at ``now_us``."""
    tenant, category = candidate.tenant_id, candidate.category
    return StateView(
        in_service=state.in_service,
        invalid=_at_or_before(state.invalid_since, now_us),
        blacklisted=any(
            (m.tenant_id is None or m.tenant_id == tenant) and _at_or_before(m.added_at, now_us)
            for m in state.blacklist
        ),
        key_used=candidate.idempotency_key in state.used_keys,
        opted_out=any(
            opt_out_applies(m, tenant_id=tenant, category=category)
            and _at_or_before(m.recorded_at, now_us)
            for m in state.opt_outs
        ),
        has_consent=any(
            consent_valid(m, tenant_id=tenant, category=category, now_us=now_us)
            for m in state.consents
        ),
        complaint_sensitive=state.complaint_sensitive,
        last_complaint_us=(
            to_us(state.last_complaint_at) if state.last_complaint_at is not None else None
        ),
        timezone=state.timezone,
        roaming_country=state.roaming_country,
    )
