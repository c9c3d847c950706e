"""The eligibility rules: each a small unit with a name, a reason code and two forms.

A rule answers "must this candidate be rejected, and why?". ``check`` is the single form
(one candidate, its :class:`~jingxin.policy.state.StateView`, its tenant's rules);
``mask`` is the batch form over a :class:`Frame` of numpy columns. The two sit side by side
so that they cannot drift apart, and the property tests compare them on random rows.

Timing (quiet hours, blackout days) lives in ``policy.timing``; caps and arbitration in
``policy.caps`` and ``policy.arbitration``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from jingxin.domain.candidate import Candidate, Category, Reason
from jingxin.policy.config import TenantRules
from jingxin.policy.localtime import US_PER_DAY
from jingxin.policy.state import StateView

# China mobile numbers in E.164: +86, then 11 digits starting 13-19.
CN_MOBILE = re.compile(r"\+861[3-9][0-9]{9}")
CN_MOBILE_PATTERN = r"^\+861[3-9][0-9]{9}$"

CATEGORY_CODES = {
    Category.OTP.value: 0,
    Category.NOTIFICATION.value: 1,
    Category.MARKETING.value: 2,
}
OTP, NOTIFICATION, MARKETING = 0, 1, 2


def category_code(category: str | None) -> int:
    return CATEGORY_CODES.get(category or "", -1)


@dataclass(frozen=True, slots=True)
class Frame:
    """A batch of candidates as numpy columns (one entry per row)."""

    category: np.ndarray  # int8 category code, -1 unknown
    well_formed: np.ndarray  # key, source and category present and known
    tenant_known: np.ndarray
    number_shape_ok: np.ndarray
    implied_consent: np.ndarray
    cooloff_us: np.ndarray
    in_service: np.ndarray
    invalid: np.ndarray
    blacklisted: np.ndarray
    key_used: np.ndarray
    opted_out: np.ndarray
    has_consent: np.ndarray
    complaint_sensitive: np.ndarray
    last_complaint_us: np.ndarray  # int64; meaningful where has_complaint
    has_complaint: np.ndarray
    now_us: int


class Rule:
    """One eligibility rule. Subclasses set ``reason`` and implement both forms."""

    reason: ClassVar[Reason]

    def check(self, candidate: Candidate, view: StateView, rules: TenantRules, now_us: int) -> bool:
        """True if the candidate must be rejected for this rule's reason."""
        raise NotImplementedError

    def mask(self, frame: Frame) -> np.ndarray:
        """The rows that must be rejected for this rule's reason."""
        raise NotImplementedError


class ValidNumber(Rule):
    reason = Reason.INVALID_NUMBER

    def check(self, candidate, view, rules, now_us):
        return view.invalid or not CN_MOBILE.fullmatch(candidate.msisdn or "")

    def mask(self, frame):
        return frame.invalid | ~frame.number_shape_ok


class InService(Rule):
    reason = Reason.NOT_IN_SERVICE

    def check(self, candidate, view, rules, now_us):
        return not view.in_service

    def mask(self, frame):
        return ~frame.in_service


class Blacklist(Rule):
    reason = Reason.BLACKLISTED

    def check(self, candidate, view, rules, now_us):
        return view.blacklisted

    def mask(self, frame):
        return frame.blacklisted.copy()


class Dedupe(Rule):
    """An idempotency key already in the contact ledger: the step reached them before."""

    reason = Reason.DUPLICATE

    def check(self, candidate, view, rules, now_us):
        return view.key_used

    def mask(self, frame):
        return frame.key_used.copy()


class OptOut(Rule):
    reason = Reason.OPTED_OUT

    def check(self, candidate, view, rules, now_us):
        return view.opted_out and candidate.category != Category.OTP

    def mask(self, frame):
        return frame.opted_out & (frame.category != OTP)


class Consent(Rule):
    """Marketing needs recorded consent, or the tenant's recorded implied-consent policy."""

    reason = Reason.NO_CONSENT

    def check(self, candidate, view, rules, now_us):
        return (
            candidate.category == Category.MARKETING
            and not view.has_consent
            and not rules.implied_consent
        )

    def mask(self, frame):
        return (frame.category == MARKETING) & ~frame.has_consent & ~frame.implied_consent


class ComplaintSensitive(Rule):
    reason = Reason.COMPLAINT_SENSITIVE

    def check(self, candidate, view, rules, now_us):
        return candidate.category == Category.MARKETING and view.complaint_sensitive

    def mask(self, frame):
        return (frame.category == MARKETING) & frame.complaint_sensitive


class ComplaintCooloff(Rule):
    """No marketing for ``cooloff_days`` after any complaint (one recorded by ``now``)."""

    reason = Reason.COMPLAINT_COOLOFF

    def check(self, candidate, view, rules, now_us):
        at = view.last_complaint_us
        if candidate.category != Category.MARKETING or at is None:
            return False
        return at <= now_us < at + rules.cooloff_days * US_PER_DAY

    def mask(self, frame):
        at = frame.last_complaint_us
        recent = (at <= frame.now_us) & (frame.now_us < at + frame.cooloff_us)
        return (frame.category == MARKETING) & frame.has_complaint & recent


RULES: tuple[Rule, ...] = (
    ValidNumber(),
    InService(),
    Blacklist(),
    Dedupe(),
    OptOut(),
    Consent(),
    ComplaintSensitive(),
    ComplaintCooloff(),
)


def malformed(candidate: Candidate) -> bool:
    """A candidate policy cannot reason about: no key, no source, unknown category."""
    return (
        not candidate.idempotency_key
        or not candidate.source
        or category_code(candidate.category) < 0
        or not isinstance(candidate.msisdn, str)
    )


def eligibility(
    candidate: Candidate, view: StateView, rules: TenantRules | None, now_us: int
) -> tuple[Reason, ...]:
    """Every reason to reject the candidate before timing and caps (empty: eligible).

    A malformed candidate or unknown tenant stops there: the other rules need both.
    """
    if malformed(candidate):
        return (Reason.BAD_CANDIDATE,)
    if rules is None:
        return (Reason.UNKNOWN_TENANT,)
    return tuple(r.reason for r in RULES if r.check(candidate, view, rules, now_us))
