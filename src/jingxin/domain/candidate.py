"""A candidate message and the policy decision about it, with the reason codes.

A :class:`Candidate` is the intent to send one SMS to one subscriber, whatever started it
(campaign, journey, geofence, hall, API). Policy turns it into a :class:`Decision`: send at
a time, defer to a later time (and why), or reject (and why). Reason codes are stable
strings: they are stored in the ``decisions`` table and shown by ``jingxin why``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Category(StrEnum):
    """What kind of message: decides which rules apply in full."""

    OTP = "otp"
    NOTIFICATION = "notification"
    MARKETING = "marketing"


class Source(StrEnum):
    """What started the candidate."""

    CAMPAIGN = "campaign"
    JOURNEY = "journey"
    FENCE = "fence"  # a geofence entry
    HALL = "hall"
    API = "api"
    PROBE = "probe"  # a dial test
    INBOX = "inbox"  # a reply to an MO (unsubscribe confirmation, keyword auto-reply)


class Outcome(StrEnum):
    SEND = "send"
    DEFER = "defer"
    REJECT = "reject"


class Reason(StrEnum):
    """Why a candidate was rejected or deferred. Declaration order is the display order."""

    BAD_CANDIDATE = "bad_candidate"  # a required field is missing or malformed
    UNKNOWN_TENANT = "unknown_tenant"
    INVALID_NUMBER = "invalid_number"  # not a CN mobile E.164, or marked invalid
    NOT_IN_SERVICE = "not_in_service"
    BLACKLISTED = "blacklisted"
    DUPLICATE = "duplicate"  # idempotency key already used (or twice in one batch)
    OPTED_OUT = "opted_out"
    NO_CONSENT = "no_consent"
    COMPLAINT_SENSITIVE = "complaint_sensitive"
    COMPLAINT_COOLOFF = "complaint_cooloff"
    BLACKOUT = "blackout"  # a blackout day: deferred to the next allowed day, or rejected
    QUIET_HOURS = "quiet_hours"  # deferred to the end of the subscriber's quiet hours
    CAP_DAY = "cap_day"
    CAP_WEEK = "cap_week"
    CAP_MONTH = "cap_month"
    CAMPAIGN_CAP_DAY = "campaign_cap_day"
    CAMPAIGN_CAP_WEEK = "campaign_cap_week"
    CAMPAIGN_CAP_MONTH = "campaign_cap_month"
    OUTRANKED = "outranked"  # a better candidate took the subscriber's remaining cap


REASON_ORDER: dict[Reason, int] = {reason: i for i, reason in enumerate(Reason)}


@dataclass(frozen=True, slots=True)
class Candidate:
    """One message policy is asked about. ``wanted_at`` None means as soon as allowed."""

    msisdn: str  # E.164, e.g. +8613812345678
    tenant_id: str
    category: str  # a Category value; kept as str so a bad one is a reason, not a crash
    source: str
    idempotency_key: str
    source_id: int | None = None  # the campaign id for campaign candidates
    priority: int = 0
    score: float = 0.0  # expected value: higher wins ties of priority
    wanted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What policy decided about one candidate.

    ``send_at`` is set for send and defer (UTC); ``reasons`` explain a defer or a reject;
    ``winner`` names the idempotency key that outranked this candidate.
    """

    outcome: Outcome
    send_at: datetime | None = None
    reasons: tuple[Reason, ...] = ()
    winner: str | None = None

    @property
    def reason_text(self) -> str:
        """The reasons comma-joined, as stored in ``decisions.reasons``."""
        return ",".join(r.value for r in self.reasons)
