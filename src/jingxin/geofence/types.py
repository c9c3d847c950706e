"""What the parts of the geofence share: a fence, a batch of location events, the
triggers the matcher finds, and the contract of an event source.

Numbers travel as int64 E.164 digits (``8613912345678``, no ``+``): a column of them is a
numpy array, sorted and searched without a Python object per event.
Times travel as int64 epoch milliseconds (UTC).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from jingxin.data.store.models.tenants import DEFAULT_TENANT_ID

SCENARIOS = ("airport_departure", "airport_arrival", "railway_station", "business_hall",
             "mall", "hospital", "campus", "scenic", "stadium", "other")  # fmt: skip
# An event's type (column ``kind``, uint8 = its index here).
EVENT_TYPES = ("update", "attach", "detach", "handover", "call", "sms", "data")
RESIDENTS = ("once", "repeat", "skip")  # what a resident of the fence gets (Fence.residents)

# What the matcher, the sources and the runner count (MatchCounts keys). A source adds
# its own ("malformed", "stream_recreated", ...); every count is reported by the runner.
COUNTS = (
    "events",  # events handed to the matcher
    "unknown_subscriber",  # number not in the directory (not ours, or new since loading)
    "off_grid",  # cell not in the cell table (abroad, another province, unknown): no fence
    "unknown_cell",  # off grid and not placed by roaming either (the runner counts it)
    "out_of_order",  # older than the subscriber's last event (an earlier batch): ignored
    "duplicate",  # same subscriber, same ts, same cell as the last event: ignored
    "entries",  # (subscriber, fence) stays started
    "exits",  # stays ended
    "dwelled",  # stays that reached their dwell time (each once)
    "triggered",  # dwelled, in hours, in the audience, under the caps: an offer asked for
    "outside_hours",  # dwelled outside the fence's hours (fires if still inside in hours)
    "not_in_audience",  # dwelled, not in the fence's segment
    "capped",  # dwelled, already had the fence's offers for the day
    "resident_skipped",  # a resident: residents=skip, or residents=once and had it
)


def to_msisdn_int(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Numbers in any usual form (``+8613912345678``, ``8613912345678``,
    ``13912345678``, with spaces or dashes) as int64 E.164 digits, and a bool mask of the
    ones that are not a Chinese mobile number (value 0 there). Vectorised (Arrow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(values, type=pa.string()) if not isinstance(values, pa.Array) else values
    if arr.type != pa.string():
        arr = pc.cast(arr, pa.string())
    digits = pc.replace_substring_regex(arr, pattern=r"[\s\-+()]", replacement="")
    national = pc.match_substring_regex(digits, pattern=r"^1[3-9][0-9]{9}$")
    full = pc.match_substring_regex(digits, pattern=r"^861[3-9][0-9]{9}$")
    ok = pc.fill_null(pc.or_(national, full), False)
    padded = pc.if_else(pc.fill_null(national, False), pc.binary_join_element_wise("86", digits, ""),
                        digits)  # fmt: skip
    cleaned = pc.if_else(ok, padded, "0")
    out = pc.cast(cleaned, pa.int64()).to_numpy(zero_copy_only=False)
    return out.astype(np.int64, copy=False), ~ok.to_numpy(zero_copy_only=False)


def msisdn_text(value: int) -> str:
    """The E.164 text of an int64 number: ``+8613912345678``."""
    return f"+{int(value)}"


def shard_of(msisdn: np.ndarray, shards: int) -> np.ndarray:
    """The stream shard of each number (0..shards-1): a multiplicative hash of the int64
    digits, so neighbouring numbers spread evenly. Publisher and matcher agree on it."""
    h = (np.asarray(msisdn, dtype=np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    return ((h >> np.uint64(32)) % np.uint64(shards)).astype(np.int32)


@dataclass(frozen=True)
class Fence:
    """One fence, resolved: its cells are cell ids of the cell table."""

    code: str  # unique per tenant; [a-z0-9][a-z0-9._-]*
    name: str
    scenario: str  # SCENARIOS
    cells: tuple[str, ...]  # sorted, unique, non-empty
    template: str  # an approved catalogue template (e.g. "fence.airport_departure")
    tenant_id: str = DEFAULT_TENANT_ID
    category: str = "marketing"
    variables: Mapping[str, str] = field(default_factory=dict)  # constant template variables
    hours: tuple[tuple[int, int], ...] = ()  # local minutes [start, end); empty: all day;
    #                                          start > end wraps midnight ((22*60, 6*60))
    dwell_seconds: int = 0  # inside this long before the offer
    cap_per_day: int = 1  # offers per subscriber per fence per local day
    residents: Literal["once", "repeat", "skip"] = "once"
    segment: Mapping[str, Any] | None = None  # an audience spec as data; None: everyone
    sender: str | None = None  # service number; None: [geofence] sender
    centre: tuple[float, float] | None = None  # (lat, lon) when defined by a radius
    radius_m: float | None = None
    enabled: bool = True
    version: int = 1
    # Share of the stays due an offer that are held out (experiment ``fence:<code>``);
    # None: the default - ``[analytics] holdout`` for a marketing fence, 0 otherwise.
    holdout: float | None = None

    def holdout_share(self, default: float) -> float:
        """The share held out, ``default`` being ``[analytics] holdout``."""
        from jingxin.analytics.holdout import share_for

        return share_for(self.holdout, category=self.category, default=default)


@dataclass
class EventBatch:
    """Location events, columnar. ``msisdn`` int64 E.164 digits; ``cell`` the cell ids
    (a Python list or an Arrow string array, one per event); ``ts`` int64 epoch ms;
    ``kind`` uint8 index into EVENT_TYPES; ``received_ms`` (optional) when the event was
    written to its source (a stream entry's id time), for the event-to-submit latency."""

    msisdn: np.ndarray
    cell: Any
    ts: np.ndarray
    kind: np.ndarray
    received_ms: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.msisdn)

    @staticmethod
    def empty() -> EventBatch:
        return EventBatch(np.empty(0, np.int64), [], np.empty(0, np.int64),
                          np.empty(0, np.uint8))  # fmt: skip


@dataclass
class Triggers:
    """Offers the matcher asks for, columnar, one row per (subscriber, fence, stay).

    ``sub`` the subscriber's index in the directory; ``msisdn`` int64; ``fence`` the fence's
    index in the compiled fences; ``entered_ms`` when the stay began (it names the stay:
    the idempotency key is ``fence:<code>:<msisdn>:<entered_ms>``); ``at_ms`` the event
    time the offer became due (the dwell elapsed, or the event that found it due);
    ``received_ms`` the triggering event's source time (or -1: a sweep)."""

    sub: np.ndarray
    msisdn: np.ndarray
    fence: np.ndarray
    entered_ms: np.ndarray
    at_ms: np.ndarray
    received_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.sub)

    def take(self, rows: np.ndarray) -> Triggers:
        """The rows at ``rows`` (indices or a bool mask), in that order."""
        return Triggers(self.sub[rows], self.msisdn[rows], self.fence[rows],
                        self.entered_ms[rows], self.at_ms[rows], self.received_ms[rows])  # fmt: skip

    @staticmethod
    def empty() -> Triggers:
        e = np.empty(0, np.int64)
        return Triggers(e.astype(np.int32), e, e.astype(np.int32), e, e, e)


@dataclass
class MatchResult:
    triggers: Triggers
    counts: Counter = field(default_factory=Counter)  # COUNTS keys


class EventSource(Protocol):
    """Where location events come from (file replay, Redis Streams, an in-process queue).

    ``read`` returns the next batch (possibly empty: nothing yet), or None when the
    source is exhausted (a replay file at its end). ``position`` is what a checkpoint
    stores to resume after everything read so far (JSON-able); ``commit(position)`` is
    called once a checkpoint holding that position is durable (a stream acks up to
    there). ``counts`` are the source's own problems (``malformed``, ...)."""

    name: str

    def read(self, max_events: int, block_ms: int) -> EventBatch | None: ...

    def position(self) -> dict[str, Any]: ...

    def commit(self, position: dict[str, Any]) -> None: ...

    def counts(self) -> Counter: ...

    def close(self) -> None: ...
