"""Send-time optimisation: at which local hour each subscriber answers, and when to send.

:func:`learn_hours` reads the event log (``analytics_events`` of kinds ``replied`` and
``clicked``: moments a subscriber demonstrably had the phone in hand) and learns, per
subscriber, the local hour they respond at. The store does the counting - one ``GROUP BY
msisdn, local hour`` - and numpy the rest, so a million events cost one pass of the
database and a few array operations, never a Python object per event.

Few events say little, so each subscriber's hour histogram is smoothed toward the
population's: ``counts + prior_weight x population share``. With no event of their own a
subscriber would get the population's best hour (they are not in the table then); with
three replies at 20:00 and a prior weight of 3, their own hour wins. The best hour is the
argmax of the smoothed histogram; ``confidence`` is the share of the subscriber's own
responses within one hour of it (the best hour and its two neighbours, circular),
discounted by the prior: ``own responses in [best-1, best+1] / (responses + prior_weight)``.
One response gives 0.25 at most; ten at the same hour 0.77.

The population's hour shares travel with the table (schema metadata, kept by Parquet), so
:func:`plan_times` can fall back on the population's best hour inside a send window.

:func:`plan_times` turns numbers into wanted instants on a day: ``best`` (the subscriber's
best hour if it lies in the window, else the population's best hour in the window, at a
minute drawn per number) or ``random`` (uniform over the window, per number and seed). Both
are deterministic: the same numbers, day, window and seed give the same instants.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
from sqlalchemy import Integer, case, cast, func, literal, literal_column, select

from jingxin.data.store.engine import store_errors
from jingxin.data.store.models.analytics import AnalyticsEvent
from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.data.store.engine import Store

__all__ = ["HOURS_SCHEMA", "MODES", "RESPONSE_KINDS", "hour_counts", "learn_hours",
           "plan_times", "population_shares", "smooth"]  # fmt: skip

RESPONSE_KINDS = ("replied", "clicked")
MODES = ("best", "random")
# The population's best hour stands in for a subscriber's own only when it is this many
# times the window's mean hour share: a clear peak (commute, evening), not noise.
PEAK_RATIO = 1.5
WINDOW_FIELD = "send_time.window"
POPULATION_KEY = b"jingxin.population"  # schema metadata: 24 hour shares (JSON)
ZONE_KEY = b"jingxin.tz"
HOURS_SCHEMA = pa.schema([("msisdn", pa.string()), ("best_hour", pa.int8()),
                          ("responses", pa.int32()), ("confidence", pa.float64())])  # fmt: skip


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"tz: {tz!r} is no IANA time zone (e.g. Asia/Shanghai)") from exc


# ----------------------------------------------------------------------------- learning


def learn_hours(store: Store, *, tz: str = "Asia/Shanghai",
                prior_weight: float = 3.0) -> pa.Table:  # fmt: skip
    """One row per subscriber with a response: ``msisdn``, ``best_hour`` (int8, local
    0..23), ``responses`` (int32), ``confidence`` (float64; module docstring). The
    population's hour shares and ``tz`` are in the schema's metadata."""
    if not prior_weight >= 0:
        raise InputError(f"prior_weight: {prior_weight!r} must be 0 or more")
    msisdns, hours, counts = hour_counts(store, tz=tz)
    population = population_shares(hours, counts)
    if len(msisdns):
        numbers, row = np.unique(msisdns, return_inverse=True)
    else:
        numbers, row = np.empty(0, object), np.empty(0, np.int64)
    own = np.zeros((len(numbers), 24), np.float64)
    np.add.at(own, (row, hours), counts)
    best, confidence = smooth(own, population, prior_weight)
    table = pa.table({"msisdn": pa.array(numbers.tolist(), pa.string()),
                      "best_hour": pa.array(best, pa.int8()),
                      "responses": pa.array(own.sum(axis=1).astype(np.int32), pa.int32()),
                      "confidence": pa.array(confidence, pa.float64())},
                     schema=HOURS_SCHEMA)  # fmt: skip
    return table.replace_schema_metadata({
        POPULATION_KEY: json.dumps([round(float(x), 6) for x in population]).encode(),
        ZONE_KEY: tz.encode()})  # fmt: skip


def smooth(own: np.ndarray, population: np.ndarray,
           prior_weight: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Best hour and confidence of each row of ``own`` (subscribers x 24 response counts)
    smoothed toward ``population`` (24 shares summing to 1) with ``prior_weight``."""
    own = np.atleast_2d(np.asarray(own, np.float64))
    smoothed = own + prior_weight * np.asarray(population, np.float64)[None, :]
    best = smoothed.argmax(axis=1)
    rows = np.arange(len(own))
    near = sum(own[rows, (best + d) % 24] for d in (-1, 0, 1))
    total = own.sum(axis=1) + prior_weight
    confidence = np.divide(near, total, out=np.zeros(len(own)), where=total > 0)
    return best.astype(np.int8), confidence


def population_shares(hours: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The population's share of responses at each local hour; uniform without any."""
    totals = np.bincount(np.asarray(hours, np.int64), weights=np.asarray(counts, np.float64),
                         minlength=24)[:24]  # fmt: skip
    total = totals.sum()
    return totals / total if total > 0 else np.full(24, 1 / 24)


def hour_counts(store: Store, *, tz: str = "Asia/Shanghai",
                msisdn: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Responses per (msisdn, local hour), counted by the store: arrays of numbers
    (object), hours (int64 0..23) and counts (int64). ``msisdn``: of that number only."""
    zone = _zone(tz)
    E = AnalyticsEvent
    where = [E.kind.in_(RESPONSE_KINDS)]
    if msisdn is not None:
        where.append(E.msisdn == msisdn)
    with store_errors("reading the response events"), store.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            hour = cast(func.extract("hour", func.timezone(tz, E.at)), Integer)
        else:
            first, last = connection.execute(select(func.min(E.at), func.max(E.at))
                                             .where(*where)).one()  # fmt: skip
            hour = _shifted_hour(E.at, zone, first, last)
        # Grouped by the label: the expression's bound values (the zone) are not repeated.
        query = (select(E.msisdn, hour.label("local_hour"), func.count()).where(*where)
                 .group_by(E.msisdn, literal_column("local_hour")))  # fmt: skip
        rows = connection.execute(query).fetchall()  # Core rows: no ORM loading
    if not rows:
        return np.empty(0, object), np.empty(0, np.int64), np.empty(0, np.int64)
    numbers, hours, counts = zip(*rows, strict=True)
    return (np.array(numbers, object), np.array(hours, np.int64) % 24,
            np.array(counts, np.int64))  # fmt: skip


def _shifted_hour(column: Any, zone: ZoneInfo, first: datetime | None,
                  last: datetime | None) -> Any:  # fmt: skip
    """SQLite's local hour of ``column`` (UTC wall time): ``strftime('%H', at, '+N
    seconds')`` with the zone's offset, by period when the offset changes (summer time)
    between the first and the last event."""
    periods = _offsets(zone, first, last)
    if len(periods) == 1:
        modifier = literal(_modifier(periods[0][1]))
    else:
        modifier = case(*[(column < start, _modifier(previous))
                          for (start, _), (_, previous) in zip(periods[1:], periods[:-1],
                                                               strict=True)],
                        else_=_modifier(periods[-1][1]))  # fmt: skip
    return cast(func.strftime("%H", column, modifier), Integer)


def _modifier(seconds: int) -> str:
    return f"{seconds:+d} seconds"


def _offsets(zone: ZoneInfo, first: datetime | None,
             last: datetime | None) -> list[tuple[datetime, int]]:  # fmt: skip
    """(from when, UTC offset in seconds) of each period of ``zone`` between ``first`` and
    ``last``; the first period starts at ``first``. Transitions are found day by day and
    then to the second by bisection."""
    def offset(at: datetime) -> int:
        return int(at.astimezone(zone).utcoffset().total_seconds())  # type: ignore[union-attr]

    if first is None or last is None:
        return [(datetime(1970, 1, 1, tzinfo=UTC), offset(datetime.now(UTC)))]
    periods = [(first, offset(first))]
    day = first
    while day < last:
        following = min(day + timedelta(days=1), last)
        if offset(following) != periods[-1][1]:
            low, high = day, following  # offset(low) is the period's, offset(high) the next
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
            periods.append((high.replace(microsecond=0), offset(high)))
        day = following
    return periods


# ----------------------------------------------------------------------------- planning


def plan_times(msisdns: Sequence[str], *, day: date, window: tuple[time, time],
               tz: str = "Asia/Shanghai", hours: pa.Table | None = None, mode: str = "best",
               seed: int = 0) -> list[datetime]:  # fmt: skip
    """A wanted instant (UTC-aware) on ``day`` inside the local ``window`` [start, end)
    for each number (module docstring). ``hours``: a table of :func:`learn_hours` (None:
    nothing learned - ``best`` then draws uniformly, as ``random`` does). A window that
    wraps midnight or is empty is an InputError naming ``send_time.window``."""
    zone = _zone(tz)
    start, end = _window_minutes(window)
    if mode not in MODES:
        raise InputError(f"send_time.mode: {mode!r} is not one of {', '.join(MODES)}")
    numbers = [str(m) for m in msisdns]
    if mode == "random" or hours is None:
        seconds = start * 60 + _unit(numbers, f"random:{seed}") * ((end - start) * 60)
        return _instants(day, seconds.astype(np.int64), zone)
    learned = (hours.schema.metadata or {}).get(ZONE_KEY)
    if learned is not None and learned.decode() != tz:
        raise InputError(f"send_time: the hours were learned in {learned.decode()}, not {tz}: "
                         "learn them again in the zone the window is written in")  # fmt: skip
    best = _best_in_window(numbers, hours, start, end)
    low = np.maximum(best * 60, start)  # the hour clipped to the window
    high = np.minimum(best * 60 + 60, end)
    seconds = low * 60 + _unit(numbers, f"best:{seed}") * ((high - low) * 60)
    unknown = best < 0  # no hour of their own and no clear population peak: a random time
    if unknown.any():
        anywhere = start * 60 + _unit(numbers, f"random:{seed}") * ((end - start) * 60)
        seconds = np.where(unknown, anywhere, seconds)
    return _instants(day, seconds.astype(np.int64), zone)


def _window_minutes(window: tuple[time, time]) -> tuple[int, int]:
    try:
        start, end = window
        first, last = start.hour * 60 + start.minute, end.hour * 60 + end.minute
    except (TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{WINDOW_FIELD}: give (start, end) local times, got {window!r}") from exc
    if end == time(0, 0):
        last = 24 * 60  # "20:00-00:00": to midnight
    if last < first:
        raise InputError(f"{WINDOW_FIELD}: {start:%H:%M}-{end:%H:%M} wraps midnight; a send "
                         "window lies within one day (send on two days instead)")  # fmt: skip
    if last == first:
        raise InputError(f"{WINDOW_FIELD}: {start:%H:%M}-{end:%H:%M} is empty")
    return first, last


def _best_in_window(numbers: list[str], hours: pa.Table, start: int, end: int) -> np.ndarray:
    """Each number's best hour if [hour, hour+1) meets the window, else the population's
    best hour among those that do - when the population has a clear peak there (its share
    at least :data:`PEAK_RATIO` times the window's mean hour); else -1: a random time. (The
    behaviour benchmark showed why: from a nearly flat history the population's "best"
    hour is noise, and sending everyone without hours of their own at it did worse than
    random times.)"""
    first, last = start // 60, (end - 1) // 60  # hours meeting [start, end)
    shares = _population(hours)
    allowed = np.arange(first, last + 1)
    fallback = int(allowed[np.argmax(shares[allowed])])
    if shares[fallback] < PEAK_RATIO * float(np.mean(shares[allowed])):
        fallback = -1
    known = dict(zip(hours.column("msisdn").to_pylist(), hours.column("best_hour").to_pylist(),
                     strict=True))  # fmt: skip
    best = np.array([known.get(n, -1) for n in numbers], np.int64)
    best[(best < first) | (best > last)] = fallback
    return best


def _population(hours: pa.Table) -> np.ndarray:
    """The population's hour shares: the table's metadata, else the best hours weighted by
    responses (a table made elsewhere)."""
    meta = hours.schema.metadata or {}
    if POPULATION_KEY in meta:
        shares = np.asarray(json.loads(meta[POPULATION_KEY]), np.float64)
        if shares.shape == (24,):
            return shares
    if not hours.num_rows:
        return np.full(24, 1 / 24)
    best = hours.column("best_hour").to_numpy(zero_copy_only=False).astype(np.int64)
    weight = hours.column("responses").to_numpy(zero_copy_only=False).astype(np.float64)
    return population_shares(best, weight)


def _unit(numbers: list[str], salt: str) -> np.ndarray:
    """A value in [0, 1) per number and salt, the same on every run (the experiments' hash,
    :func:`jingxin.analytics.assign.unit`, under a salt of its own)."""
    from jingxin.analytics.assign import unit

    return unit(numbers, f"send_time:{salt}") if numbers else np.empty(0, np.float64)


def _instants(day: date, seconds: np.ndarray, zone: ZoneInfo) -> list[datetime]:
    """``day`` + local ``seconds`` after midnight in ``zone``, as UTC instants."""
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    if not len(seconds):
        return []
    offsets = {int(_at(midnight, int(s)).utcoffset().total_seconds())  # type: ignore[union-attr]
               for s in (int(seconds.min()), int(seconds.max()))}
    if len(offsets) == 1:  # one offset over the window (no summer-time change in it)
        base = datetime.combine(day, time(0), tzinfo=UTC) - timedelta(seconds=offsets.pop())
        return [base + timedelta(seconds=s) for s in seconds.tolist()]
    return [_at(midnight, s).astimezone(UTC) for s in seconds.tolist()]


def _at(midnight: datetime, seconds: int) -> datetime:
    """The local wall time ``seconds`` after ``midnight`` (aware, in its zone)."""
    return (midnight.replace(tzinfo=None) + timedelta(seconds=seconds)).replace(
        tzinfo=midnight.tzinfo)
