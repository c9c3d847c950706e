"""The batch twin of ``policy.timing``: local clocks, quiet hours and blackout days in numpy.

Time-zone work is done once per distinct (zone, quarter hour) and (zone, local minute),
through the very functions the single form uses (``policy.localtime``), then broadcast
back to the rows: a million rows in one zone cost a handful of zoneinfo lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jingxin.domain.candidate import Reason
from jingxin.policy.codes import factorize
from jingxin.policy.localtime import (
    OFFSET_BUCKET_US,
    US_PER_DAY,
    US_PER_MINUTE,
    local_to_utc_us,
    subscriber_zone,
    zone_offset_us,
)
from jingxin.policy.rules import MARKETING, NOTIFICATION

ZONE_SHIFT = np.int64(1) << np.int64(42)
VALUE_BIAS = np.int64(1) << np.int64(41)  # keeps values before 1970 decodable
BIT_QUIET = np.int32(1) << np.int32(list(Reason).index(Reason.QUIET_HOURS))
BIT_BLACKOUT = np.int32(1) << np.int32(list(Reason).index(Reason.BLACKOUT))


class ZoneClock:
    """Offsets and local-to-UTC conversions for rows that each name a zone (by index)."""

    def __init__(self, zones: list[str]) -> None:
        self.zones = zones

    def _per_unique(self, zone_idx: np.ndarray, values: np.ndarray, fn) -> np.ndarray:
        keys = zone_idx.astype(np.int64) * ZONE_SHIFT + (values + VALUE_BIAS)
        inverse, uniq = factorize(keys)
        zone_of, value_of = np.divmod(uniq, ZONE_SHIFT)
        value_of -= VALUE_BIAS
        looked_up = np.fromiter(
            (fn(self.zones[z], int(v)) for z, v in zip(zone_of, value_of, strict=True)),
            dtype=np.int64,
            count=len(uniq),
        )
        return looked_up[inverse]

    def offsets(self, zone_idx: np.ndarray, utc_us: np.ndarray) -> np.ndarray:
        buckets = utc_us // OFFSET_BUCKET_US
        return self._per_unique(
            zone_idx, buckets, lambda zone, b: zone_offset_us(zone, b * OFFSET_BUCKET_US)
        )

    def local(self, zone_idx: np.ndarray, utc_us: np.ndarray) -> np.ndarray:
        return utc_us + self.offsets(zone_idx, utc_us)

    def to_utc(self, zone_idx: np.ndarray, local_us: np.ndarray) -> np.ndarray:
        minutes = local_us // US_PER_MINUTE  # targets are whole minutes
        return self._per_unique(
            zone_idx, minutes, lambda zone, m: local_to_utc_us(zone, m * US_PER_MINUTE)
        )


def resolve_zones(
    roaming_code: np.ndarray,
    roaming_values: list[str | None],
    tz_code: np.ndarray,
    tz_values: list[str | None],
    default_zone: list[str],
    tenant_idx: np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """Each row's zone index into the returned zone list (``subscriber_zone`` per distinct)."""
    width = np.int64(len(tz_values) + 1)
    tenants = np.int64(len(default_zone))
    keys = (roaming_code.astype(np.int64) * width + tz_code) * tenants + tenant_idx
    inverse, uniq = factorize(keys)
    zones: list[str] = []
    index: dict[str, int] = {}
    mapped = np.empty(len(uniq), dtype=np.int32)
    for i, key in enumerate(uniq.tolist()):
        rest, tenant = divmod(key, int(tenants))
        roaming, tz = divmod(rest, int(width))
        zone = subscriber_zone(roaming_values[roaming], tz_values[tz], default_zone[tenant])
        mapped[i] = index.setdefault(zone, len(zones))
        if mapped[i] == len(zones):
            zones.append(zone)
    return mapped[inverse], zones


@dataclass(frozen=True, slots=True)
class TimingParams:
    """Per-row tenant settings the timing needs (already broadcast to rows)."""

    quiet_start: np.ndarray
    quiet_end: np.ndarray
    notification_quiet: np.ndarray
    day_start: np.ndarray
    blackout_reject: np.ndarray
    blackout_horizon: np.ndarray


def quiet_mask(minute: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    inside = np.where(
        start < end, (minute >= start) & (minute < end), (minute >= start) | (minute < end)
    )
    return inside & (start != end)


def plan_times(
    *,
    rows: np.ndarray,
    category: np.ndarray,
    send: np.ndarray,
    zone_idx: np.ndarray,
    tenant_idx: np.ndarray,
    params: TimingParams,
    blackout_keys: np.ndarray,
    clock: ZoneClock,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the eligible ``rows``: (send instant, delay reason bits, blackout-rejected mask)."""
    send = send[rows].copy()
    cat, zone, tenant = category[rows], zone_idx[rows], tenant_idx[rows]
    start, end = params.quiet_start[rows], params.quiet_end[rows]
    delays = np.zeros(len(rows), dtype=np.int32)
    applies = (cat == MARKETING) | ((cat == NOTIFICATION) & params.notification_quiet[rows])
    local = clock.local(zone, send)
    minute = (local // US_PER_MINUTE) % 1440
    quiet = applies & quiet_mask(minute, start, end)
    if quiet.any():
        day = local[quiet] // US_PER_DAY
        target_day = np.where(minute[quiet] < end[quiet], day, day + 1)
        moved = clock.to_utc(zone[quiet], target_day * US_PER_DAY + end[quiet] * US_PER_MINUTE)
        changed = moved != send[quiet]
        delays[np.flatnonzero(quiet)[changed]] |= BIT_QUIET
        send[quiet] = moved
    rejected = np.zeros(len(rows), dtype=bool)
    if len(blackout_keys):
        send, rejected = _blackout(
            send, cat, zone, tenant, rows, params, blackout_keys, clock, delays
        )
    return send, delays, rejected


def blackout_key(tenant_idx: np.ndarray, day: np.ndarray) -> np.ndarray:
    return tenant_idx.astype(np.int64) * (np.int64(1) << np.int64(32)) + (day + (1 << 31))


def _blackout(send, cat, zone, tenant, rows, params, blackout_keys, clock, delays):
    day = clock.local(zone, send) // US_PER_DAY
    hit = (cat == MARKETING) & np.isin(blackout_key(tenant, day), blackout_keys)
    rejected = np.zeros(len(send), dtype=bool)
    if not hit.any():
        return send, rejected
    idx = np.flatnonzero(hit)
    first, next_day, tenants = day[idx], day[idx] + 1, tenant[idx]
    still = np.isin(blackout_key(tenants, next_day), blackout_keys)
    while still.any():  # runs as many times as the longest run of blackout days
        next_day[still] += 1
        still &= np.isin(blackout_key(tenants, next_day), blackout_keys)
    source_rows = rows[idx]
    reject = params.blackout_reject[source_rows] | (
        next_day - first > params.blackout_horizon[source_rows]
    )
    rejected[idx[reject]] = True
    delays[idx] |= BIT_BLACKOUT
    keep = idx[~reject]
    if len(keep):
        start = params.day_start[rows[keep]]
        send[keep] = clock.to_utc(
            zone[keep], next_day[~reject] * US_PER_DAY + start * US_PER_MINUTE
        )
    return send, rejected
