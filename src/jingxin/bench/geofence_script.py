"""The event script of ``jingxin bench geofence-crash`` (:mod:`jingxin.bench.geofence_crash`):
location events computed with the offers they must cause, so the crash run can compare the
outbox with what a matcher that never forgot anything would have asked for.

Each chosen number is seen outside a fence, enters it, moves between its cells past the
dwell; some leave, some of those come back the same day (capped: no second offer); other
numbers move between cells in no fence. Vectorised with numpy; deterministic by seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from jingxin.bench.geofence_crash import FenceCrashPlan

# The script's event times (seconds): every other fence offers after DWELL_S inside; a stay
# is seen LEAD_S before its entry (outside), then inside at STAY_S after it (to 1.5 dwells);
# leavers go at EXIT_S, returners are back at BACK_S (capped: one offer per fence per day).
# Entries spread over SPREAD_S, so that many stays are open whenever the kill comes.
DWELL_S, LEAD_S, SPREAD_S = 120, 60, 900
STAY_S = tuple(DWELL_S * k // 4 for k in range(1, 7))
EXIT_S, BACK_S = STAY_S[-1] + 30, tuple(STAY_S[-1] + 90 + 30 * k for k in range(5))
SPAN_S = LEAD_S + SPREAD_S + BACK_S[-1] + 60  # event time the script covers


@dataclass(frozen=True, slots=True)
class Script:
    """The events in publishing (time) order and what they must cause."""

    msisdn: np.ndarray  # int64
    cell: np.ndarray  # object: cell ids
    ts: np.ndarray  # int64 epoch ms
    expected: frozenset[str]  # offer keys
    returners: int  # re-entries the cap must refuse
    inside_at_end: int  # stays open once every event is matched


# --------------------------------------------------------------------------- the script


def script_start(now: datetime, zone: str) -> int:
    """Epoch ms the script starts at: ``SPAN_S`` before ``now``, but not before today's
    local midnight (the caps count one local day)."""
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(max(local - timedelta(seconds=SPAN_S), midnight).timestamp() * 1000)


def build_script(plan: FenceCrashPlan, fences: list[Any], plain: np.ndarray,
                 numbers: np.ndarray, t0_ms: int) -> Script:  # fmt: skip
    """The events of ``plan`` (module docstring) over ``fences`` (three cells each), the
    cells in no fence ``plain`` and the directory's ``numbers``; vectorised."""
    import numpy as np

    from jingxin.errors import InputError
    from jingxin.geofence.offers import offer_key

    rng = np.random.default_rng(plan.seed)
    n = plan.subscribers
    if n >= len(numbers):
        raise InputError(f"--subscribers: {n} of a warehouse with {len(numbers)} numbers; "
                         "leave some to move outside the fences")  # fmt: skip
    order = rng.permutation(len(numbers))
    who, others = numbers[order[:n]], numbers[order[n:]]
    fence_of = rng.integers(0, len(fences), n)
    entry = t0_ms + 1000 * (LEAD_S + np.arange(n, dtype=np.int64) * SPREAD_S // max(n, 1))
    leave = rng.random(n) < plan.leave_share
    back = leave & (rng.random(n) < plan.return_share)
    fence_cells = np.array([f.cells[:3] for f in fences], dtype=object)
    def outside(i: np.ndarray, j: int) -> np.ndarray:
        return plain[rng.integers(0, len(plain), len(i))]

    parts = [_rows(who, entry, [-LEAD_S], outside),
             _rows(who, entry, [0, *STAY_S], lambda i, j: fence_cells[fence_of[i], j % 3]),
             _rows(who[leave], entry[leave], [EXIT_S], outside),
             _rows(who[back], entry[back], BACK_S,
                   lambda i, j: fence_cells[fence_of[back][i], j % 3])]  # fmt: skip
    own = sum(len(p[0]) for p in parts)
    if plan.events < own:
        raise InputError(f"--events: the stays of {n} subscribers take {own} events; "
                         f"give at least that many")  # fmt: skip
    noise = plan.events - own
    parts.append((others[rng.integers(0, len(others), noise)],
                  plain[rng.integers(0, len(plain), noise)],
                  t0_ms + rng.integers(0, SPAN_S * 1000, noise)))  # fmt: skip
    msisdn, cell, ts = (np.concatenate([p[k] for p in parts]) for k in range(3))
    by_time = np.argsort(ts, kind="stable")
    codes = [f.code for f in fences]
    expected = frozenset(offer_key(codes[f], m, e) for f, m, e in zip(
        fence_of.tolist(), who.tolist(), entry.tolist(), strict=True))  # fmt: skip
    return Script(msisdn[by_time], cell[by_time], ts[by_time], expected,
                  returners=int(back.sum()), inside_at_end=int(n - leave.sum() + back.sum()))


def _rows(who: np.ndarray, entry: np.ndarray, offsets_s: Any,
          cells: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(msisdn, cell, ts) of ``who`` at ``entry`` + each offset; ``cells(i, j)``: the cell
    of the subscribers ``i`` (positions in ``who``) at the ``j``-th offset."""
    import numpy as np

    k, idx = len(offsets_s), np.arange(len(who))
    cell = np.empty((len(who), k), dtype=object)
    for j in range(k):  # a handful of offsets, each vectorised over the subscribers
        cell[:, j] = cells(idx, j)
    ts = entry[:, None] + 1000 * np.asarray(offsets_s, np.int64)[None, :]
    return np.repeat(who, k), cell.ravel(), ts.ravel()
