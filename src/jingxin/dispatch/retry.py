"""What to do after a submit failed: retry later, give up, or resolve an unanswered submit.

The rules (docs/dispatch.md says the same):

* **Temporary** (:class:`~jingxin.errors.Retry`: throttled, queue full, link down or
  re-binding): back to ``queued`` at ``now + delay``, where the delay grows
  ``base * factor ** (attempts - 1)`` up to ``max_delay`` (and is at least what the
  channel asked for). Once that time is past the message's ``expires_at`` the message is
  final ``expired`` - never sent late.
* **Permanent** (any other :class:`~jingxin.errors.ChannelError`, e.g. a refused
  destination or text that cannot be encoded): final ``failed``, never retried.
* **Unresolved** (the submit left, but no response came: response time-out, link lost
  mid-flight, or the worker died): the SMSC may or may not have the message. The rule per
  source or category is ``resend`` (back to queued, the default: a missed OTP costs more
  than a duplicate) or ``fail`` (final ``failed`` with ``unresolved``, for tenants that
  would rather lose a marketing message than send it twice). A source's rule wins over its
  category's; the settings' default makes inbox replies ``fail``: an answer to an MO is
  sent at most once (a subscriber who texted TD must not get two confirmations, and one
  who gets none can text again). Either way ``messages.unresolved`` is incremented and
  the ``unresolved`` metric counted, so duplicates are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from jingxin.errors import ChannelError, Retry


class Failure(StrEnum):
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    UNRESOLVED = "unresolved"


def classify(error: BaseException) -> Failure:
    """Which kind of failure ``error`` is (channels mark unanswered submits ``unresolved``)."""
    if getattr(error, "unresolved", False):
        return Failure.UNRESOLVED
    if isinstance(error, Retry):
        return Failure.TEMPORARY
    if isinstance(error, ChannelError):
        return Failure.PERMANENT
    if isinstance(error, (TimeoutError, ConnectionError)):
        return Failure.UNRESOLVED
    return Failure.PERMANENT


def error_code(error: BaseException) -> str:
    """A short code for ``messages.error_code``: the protocol status when there is one."""
    status = getattr(error, "status", None)
    if isinstance(status, int):
        return f"0x{status:08x}"
    return classify(error).value


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where a failed message goes: ``queued`` again at ``retry_at``, or a final state."""

    state: str
    retry_at: datetime | None = None


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 300.0
    max_attempts: int = 50
    unresolved: dict[str, Literal["resend", "fail"]] = field(default_factory=dict)

    def delay(self, attempts: int, asked: float = 0.0) -> float:
        grown = self.base * self.factor ** max(attempts - 1, 0)
        return max(min(grown, self.max_delay), asked)

    def unresolved_rule(self, *, category: str, source: str | None = None) -> str:
        """``resend`` or ``fail`` for an unanswered submit: the rule for the message's
        source when there is one (e.g. ``inbox``), else for its category."""
        rule = self.unresolved.get(source) if source else None
        return rule or self.unresolved.get(category, "resend")

    def after(
        self, *, failure: Failure, attempts: int, category: str, now: datetime,
        expires_at: datetime | None, asked: float = 0.0, source: str | None = None,
    ) -> Verdict:  # fmt: skip
        """The verdict for a message that failed its ``attempts``-th submit."""
        if failure is Failure.PERMANENT:
            return Verdict("failed")
        if (
            failure is Failure.UNRESOLVED
            and self.unresolved_rule(category=category, source=source) == "fail"
        ):
            return Verdict("failed")
        if attempts >= self.max_attempts:
            return Verdict("failed")
        delay = 0.0 if failure is Failure.UNRESOLVED else self.delay(attempts, asked)
        retry_at = now + timedelta(seconds=delay)
        if expires_at is not None and retry_at >= expires_at:
            return Verdict("expired")
        return Verdict("queued", retry_at)
