"""The batch twin of ``policy.caps`` and ``policy.arbitration``: windows, counts, winners.

Ledger counts are range counts over one sorted integer key per contact
(subscriber, category or campaign, local day), answered with ``searchsorted`` for every
row's day / week / month at once. Arbitration is the greedy walk of the single form, run
as rounds: round k takes the k-th best candidate of every subscriber at the same time.
Within a round every row belongs to a different subscriber, so their windows never
collide and the counters update with plain fancy indexing. The number of rounds is the
largest number of competing candidates one subscriber has (a handful in practice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jingxin.errors import PolicyError
from jingxin.policy.caps import WINDOW_REASONS
from jingxin.policy.codes import factorize

DAY_BITS = np.int64(21)
DAY_BIAS = np.int64(1) << np.int64(20)
KEY_LIMIT = np.int64(1) << np.int64(41)
SLOT_BITS = np.array(
    [np.int32(1) << np.int32(list(type(r)).index(r)) for r in WINDOW_REASONS], dtype=np.int32
)


@dataclass(frozen=True, slots=True)
class Ledger:
    """Ledger rows mapped onto the batch's subscriber ids (rows of unknown numbers dropped)."""

    msisdn_id: np.ndarray
    category: np.ndarray
    campaign: np.ndarray
    has_campaign: np.ndarray
    day: np.ndarray


@dataclass(frozen=True, slots=True)
class Windows:
    """For each participating row and each of the six slots: key, limit, ledger count."""

    key: np.ndarray  # int64 (n, 6); -1 where the slot has no cap
    limit: np.ndarray
    used: np.ndarray


def periods(day: np.ndarray) -> tuple[np.ndarray, ...]:
    """(day, week, month) numbers and each period's first and last day."""
    week = (day + 3) // 7
    month = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    month_lo = month.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    month_hi = (month + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - 1
    return (day, week, month), ((day, day), (week * 7 - 3, week * 7 + 3), (month_lo, month_hi))


def _compose(scope: np.ndarray, day: np.ndarray) -> np.ndarray:
    if len(scope) and scope.max(initial=0) >= KEY_LIMIT:
        raise PolicyError("batch too large for one decide call: split it by subscriber")
    return (scope << DAY_BITS) + (day + DAY_BIAS)


def _range_count(sorted_keys: np.ndarray, scope: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    left = np.searchsorted(sorted_keys, _compose(scope, lo), side="left")
    right = np.searchsorted(sorted_keys, _compose(scope, hi), side="right")
    return right - left


def windows(
    *,
    msisdn_id: np.ndarray,
    category: np.ndarray,
    campaign: np.ndarray,
    has_campaign: np.ndarray,
    day: np.ndarray,
    limits: np.ndarray,
    ledger: Ledger,
) -> Windows:
    """Every participating row's six windows, with the ledger's count in each."""
    n = len(day)
    camps = np.unique(campaign[has_campaign])
    n_camp = np.int64(len(camps) + 3)
    code = np.where(has_campaign, np.searchsorted(camps, campaign), 0).astype(np.int64)
    l_pos = np.searchsorted(camps, ledger.campaign)
    l_known = ledger.has_campaign & (l_pos < len(camps))
    l_known[l_known] &= camps[l_pos[l_known]] == ledger.campaign[l_known]
    ids = msisdn_id.astype(np.int64)
    category_scope = ids * 4 + category
    campaign_scope = ids * n_camp + 3 + code
    cat_keys = np.sort(_compose(ledger.msisdn_id * 4 + ledger.category, ledger.day))
    camp_keys = np.sort(
        _compose(ledger.msisdn_id[l_known] * n_camp + 3 + l_pos[l_known], ledger.day[l_known])
    )
    numbers, bounds = periods(day)
    key = np.full((n, 6), -1, dtype=np.int64)
    used = np.zeros((n, 6), dtype=np.int64)
    for slot in range(6):
        period, (lo, hi) = numbers[slot % 3], bounds[slot % 3]
        scope, keys = (category_scope, cat_keys) if slot < 3 else (campaign_scope, camp_keys)
        has = limits[:, slot] >= 0
        if slot >= 3:
            has &= has_campaign
        used[has, slot] = _range_count(keys, scope[has], lo[has], hi[has])
        key[has, slot] = _compose((scope[has] * 6 + slot), period[has])
    return Windows(key, limits, used)


@dataclass(frozen=True, slots=True)
class Verdicts:
    cap_bits: np.ndarray  # int32 reason bits of windows the ledger alone filled
    outranked: np.ndarray  # bool
    winner: np.ndarray  # int64 index (into the participating rows) of the winner, or -1


def arbitrate(*, msisdn_id: np.ndarray, rank: np.ndarray, found: Windows) -> Verdicts:
    """The greedy walk in rounds; ``rank`` is each row's position in the global order."""
    n = len(rank)
    has = found.key >= 0
    full = has & (found.used >= found.limit)
    cap_bits = (full * SLOT_BITS).sum(axis=1).astype(np.int32)
    outranked = np.zeros(n, dtype=bool)
    winner = np.full(n, -1, dtype=np.int64)
    contenders = np.flatnonzero((cap_bits == 0) & has.any(axis=1))
    if not len(contenders):
        return Verdicts(cap_bits, outranked, winner)
    window_id, uniq = factorize(found.key[contenders].ravel())
    window_id = window_id.reshape(len(contenders), 6)
    window_id[~has[contenders]] = -1
    taken = np.zeros(len(uniq), dtype=np.int64)
    first = np.full(len(uniq), -1, dtype=np.int64)
    order = np.lexsort((rank[contenders], msisdn_id[contenders]))
    group = msisdn_id[contenders][order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    position = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    by_round = order[np.argsort(position, kind="stable")]
    bounds = np.searchsorted(np.sort(position), np.arange(position.max() + 2))
    for k in range(len(bounds) - 1):
        local = by_round[bounds[k] : bounds[k + 1]]
        _round(local, contenders, window_id, found, taken, first, outranked, winner)
    return Verdicts(cap_bits, outranked, winner)


def _round(local, contenders, window_id, found, taken, first, outranked, winner) -> None:
    rows = contenders[local]
    wid = window_id[local]
    present = wid >= 0
    safe = np.where(present, wid, 0)
    blocked = present & (found.used[rows] + taken[safe] >= found.limit[rows])
    lost = blocked.any(axis=1)
    if lost.any():
        first_slot = blocked[lost].argmax(axis=1)
        outranked[rows[lost]] = True
        winner[rows[lost]] = first[safe[lost, first_slot]]
    won = ~lost
    ids = wid[won][present[won]]
    taken[ids] += 1
    owners = np.repeat(rows[won], present[won].sum(axis=1))
    unset = first[ids] < 0
    first[ids[unset]] = owners[unset]
