"""The subscriber's local clock: which zone, which local minute, which local day.

Policy works on integer microseconds since the Unix epoch (UTC), the same unit the batch
form keeps in Arrow ``timestamp[us]`` columns, so the single and the batch form do the same
arithmetic. Time-zone lookups go through two cached functions, :func:`zone_offset_us` and
:func:`local_to_utc_us`, used by both forms: that is what makes them agree to the
microsecond, DST included.

A roaming subscriber is on the visited country's clock: :func:`country_zone` maps an ISO
3166 country to one representative IANA zone (the capital's, for countries with many).
"""

from __future__ import annotations

import importlib.resources
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_DAY = 86_400 * US_PER_SECOND
# Offsets change only at transitions, which fall on quarter hours: one lookup per bucket.
OFFSET_BUCKET_US = 15 * US_PER_MINUTE
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Countries with several zones: the one most travellers meet (zone.tab lists others first).
REPRESENTATIVE_ZONES = {
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "CN": "Asia/Shanghai",
    "ES": "Europe/Madrid",
    "ID": "Asia/Jakarta",
    "KZ": "Asia/Almaty",
    "MX": "America/Mexico_City",
    "MY": "Asia/Kuala_Lumpur",
    "NZ": "Pacific/Auckland",
    "PT": "Europe/Lisbon",
    "RU": "Europe/Moscow",
    "US": "America/New_York",
}


def to_us(moment: datetime) -> int:
    """A timezone-aware datetime as microseconds since the epoch."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def from_us(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


@cache
def _zone_table() -> dict[str, str]:
    """First zone per country in tzdata's zone.tab, with our representative choices on top."""
    table: dict[str, str] = {}
    try:
        text = importlib.resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        try:
            with open("/usr/share/zoneinfo/zone.tab", encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            text = ""
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) >= 3:
            table.setdefault(fields[0].upper(), fields[2])
    table.update(REPRESENTATIVE_ZONES)
    return table


@cache
def valid_zone(name: str | None) -> bool:
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def country_zone(country: str | None) -> str | None:
    """A representative IANA zone of an ISO 3166 alpha-2 country, or None if unknown."""
    if not country:
        return None
    zone = _zone_table().get(country.strip().upper())
    return zone if zone and valid_zone(zone) else None


@lru_cache(maxsize=4096)
def subscriber_zone(roaming_country: str | None, timezone: str | None, default: str) -> str:
    """The zone whose clock applies: the visited country's, else the subscriber's, else default."""
    visited = country_zone(roaming_country)
    if visited:
        return visited
    if valid_zone(timezone):
        return timezone  # type: ignore[return-value]
    return default


@lru_cache(maxsize=65536)
def _offset_at_bucket(zone: str, bucket: int) -> int:
    moment = from_us(bucket * OFFSET_BUCKET_US)
    offset = moment.astimezone(ZoneInfo(zone)).utcoffset()
    return int(offset.total_seconds()) * US_PER_SECOND if offset else 0


def zone_offset_us(zone: str, utc_us: int) -> int:
    """The zone's UTC offset at that instant, in microseconds."""
    return _offset_at_bucket(zone, utc_us // OFFSET_BUCKET_US)


@lru_cache(maxsize=65536)
def local_to_utc_us(zone: str, local_us: int) -> int:
    """The instant at which the zone's wall clock shows ``local_us`` (first one if repeated).

    A wall time inside a spring-forward gap is read with the offset before the gap, as
    :mod:`zoneinfo` does for ``fold=0``.
    """
    naive = datetime(1970, 1, 1) + timedelta(microseconds=local_us)
    return to_us(naive.replace(tzinfo=ZoneInfo(zone)))


def local_us(zone: str, utc_us: int) -> int:
    """Wall-clock microseconds since the local epoch (the UTC instant plus the offset)."""
    return utc_us + zone_offset_us(zone, utc_us)


def day_number(local: int) -> int:
    """Days since 1970-01-01 in local wall time."""
    return local // US_PER_DAY


def minute_of_day(local: int) -> int:
    return (local // US_PER_MINUTE) % (24 * 60)


def week_number(day: int) -> int:
    """ISO weeks (Monday first) since the week of 1970-01-01 (a Thursday)."""
    return (day + 3) // 7


def week_days(week: int) -> tuple[int, int]:
    """First and last day number of a week number."""
    return week * 7 - 3, week * 7 + 3


def month_number(day: int) -> int:
    """Calendar months since January 1970."""
    d = date.fromordinal(day + EPOCH_ORDINAL)
    return (d.year - 1970) * 12 + d.month - 1


def month_days(month: int) -> tuple[int, int]:
    year, index = divmod(month, 12)
    first = date(1970 + year, index + 1, 1)
    nxt = date(1970 + year + (index + 1) // 12, (index + 1) % 12 + 1, 1)
    return first.toordinal() - EPOCH_ORDINAL, nxt.toordinal() - EPOCH_ORDINAL - 1


def date_of_day(day: int) -> date:
    return date.fromordinal(day + EPOCH_ORDINAL)


def day_of_date(value: date) -> int:
    return value.toordinal() - EPOCH_ORDINAL
