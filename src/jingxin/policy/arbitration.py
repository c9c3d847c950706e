"""Arbitration: several candidates competing for one subscriber's remaining caps.

Candidates are ranked by priority (high first), then score (high first), then wanted time
(early first; none means now), then idempotency key, then input position. Going down that
order, a candidate takes one place in each of its cap windows if every window still has
room; otherwise:

- if the ledger alone already fills a window -> ``reject`` with that window's cap reason;
- if only better-ranked candidates of this same call fill it -> ``reject: outranked``,
  naming (``Decision.winner``) the best-ranked candidate that took a place in the first
  such window (slot order: day, week, month, campaign day, campaign week, campaign month).

The same idempotency key twice in one call: the best-ranked one is decided, every other
one is rejected as ``duplicate`` and nothing else.

:func:`decide_many` is the reference the vectorised batch form must equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from jingxin.domain.candidate import Candidate, Decision, Outcome, Reason
from jingxin.policy.caps import full_windows
from jingxin.policy.config import PolicyConfig
from jingxin.policy.decide import Assessment, assess
from jingxin.policy.localtime import to_us
from jingxin.policy.state import ContactState


def rank_key(candidate: Candidate, index: int, now_us: int) -> tuple:
    """Sort key: best candidate first."""
    score = candidate.score if not math.isnan(candidate.score) else -math.inf
    wanted = now_us if candidate.wanted_at is None else to_us(candidate.wanted_at)
    return (-candidate.priority, -score, wanted, candidate.idempotency_key or "", index)


def decide_many(
    candidates: Sequence[Candidate],
    states: Mapping[str, ContactState],
    now: datetime,
    config: PolicyConfig,
) -> list[Decision]:
    """Decide candidates together (a batch, or several sources at once), in input order."""
    now_us = to_us(now)
    order = sorted(range(len(candidates)), key=lambda i: rank_key(candidates[i], i, now_us))
    decisions: list[Decision | None] = [None] * len(candidates)
    seen_keys: set[str] = set()
    taken: dict[tuple, int] = {}
    first_taker: dict[tuple, str] = {}
    for i in order:
        candidate = candidates[i]
        key = candidate.idempotency_key
        if key and key in seen_keys:
            decisions[i] = Decision(Outcome.REJECT, None, (Reason.DUPLICATE,))
            continue
        if key:
            seen_keys.add(key)
        state = states.get(candidate.msisdn) or ContactState(msisdn=candidate.msisdn)
        decisions[i] = _arbitrate(
            assess(candidate, state, now_us, config), candidate, taken, first_taker
        )
    return [d for d in decisions if d is not None]


def _arbitrate(
    assessment: Assessment,
    candidate: Candidate,
    taken: dict[tuple, int],
    first_taker: dict[tuple, str],
) -> Decision:
    if assessment.rejected or assessment.send_us is None:
        return assessment.verdict()
    by_ledger = full_windows(assessment.windows)
    if by_ledger:
        return assessment.verdict(by_ledger)
    keyed = [((candidate.msisdn, *w.key), w) for w in assessment.windows]
    for window_key, window in keyed:
        if window.used + taken.get(window_key, 0) >= window.limit:
            winner = first_taker[window_key]
            return assessment.verdict((Reason.OUTRANKED,), winner=winner)
    for window_key, _window in keyed:
        taken[window_key] = taken.get(window_key, 0) + 1
        first_taker.setdefault(window_key, candidate.idempotency_key)
    return assessment.verdict()
