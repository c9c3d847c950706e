"""The single form: ``decide(candidate, state, now, config) -> Decision``.

Pure and allocation-light, for triggers and the API. The order of work:

1. malformed candidate or unknown tenant -> reject (``bad_candidate`` / ``unknown_tenant``);
2. every eligibility rule (``policy.rules``) -> reject with all the reasons that hold;
3. timing (``policy.timing``): wanted time, quiet hours, blackout -> a send instant;
4. caps (``policy.caps``) on the local day of that instant -> reject if a window is full;
5. otherwise send at the instant (``defer`` if quiet hours or blackout moved it).

:func:`assess` stops before step 4's verdict so that ``policy.arbitration`` can weigh
several candidates for the same subscriber against the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jingxin.domain.candidate import REASON_ORDER, Candidate, Decision, Outcome, Reason
from jingxin.policy.caps import Window, full_windows, windows
from jingxin.policy.config import PolicyConfig
from jingxin.policy.localtime import day_number, from_us, local_us, to_us
from jingxin.policy.rules import eligibility
from jingxin.policy.state import ContactState, state_view
from jingxin.policy.timing import plan_time


@dataclass(frozen=True, slots=True)
class Assessment:
    """A candidate judged on its own: rejected, or a send instant and its cap windows."""

    rejected: tuple[Reason, ...]
    send_us: int | None = None
    delays: tuple[Reason, ...] = ()
    windows: tuple[Window, ...] = ()

    def verdict(self, extra: tuple[Reason, ...] = (), winner: str | None = None) -> Decision:
        """The decision, with any further rejection reasons (caps, outranked)."""
        reasons = self.rejected + extra
        if reasons or self.send_us is None:
            return Decision(Outcome.REJECT, None, ordered(reasons), winner)
        outcome = Outcome.DEFER if self.delays else Outcome.SEND
        return Decision(outcome, from_us(self.send_us), ordered(self.delays))


def ordered(reasons: tuple[Reason, ...]) -> tuple[Reason, ...]:
    return tuple(sorted(set(reasons), key=REASON_ORDER.__getitem__))


def assess(
    candidate: Candidate, state: ContactState, now_us: int, config: PolicyConfig
) -> Assessment:
    """Everything about the candidate that does not depend on other candidates."""
    rules = config.rules_for(candidate.tenant_id)
    view = state_view(candidate, state, now_us)
    rejected = eligibility(candidate, view, rules, now_us)
    if rejected or rules is None:
        return Assessment(rejected or (Reason.UNKNOWN_TENANT,))
    timing = plan_time(candidate, view, rules, now_us)
    if timing.send_us is None:
        return Assessment(timing.reasons)
    day = day_number(local_us(timing.zone, timing.send_us))
    return Assessment(
        (), timing.send_us, timing.reasons, windows(candidate, rules, day, state.contacts)
    )


def decide(
    candidate: Candidate, state: ContactState, now: datetime, config: PolicyConfig
) -> Decision:
    """Send at T, defer to T (why), or reject (why) - for one candidate on its own."""
    assessment = assess(candidate, state, to_us(now), config)
    return assessment.verdict(full_windows(assessment.windows))
