"""The matcher loop: events in, offers and roaming welcomes out, state checkpointed.

:func:`run_matcher` loads the enabled fences from the store, the cell table and the
subscriber directory from the warehouse, compiles the fences and their audience and
resident bitmaps, restores the matcher (and the roaming detector) from the checkpoint if
there is one, then per round: reads a batch from the source, matches it, sweeps the stays
whose dwell elapsed with no new event, places the off-grid events (roaming), and hands
the offers and the welcomes to the delivery entry. Fences are re-read when the store's
fence version moves (``[geofence] fences_refresh_seconds``), audiences every
``audience_refresh_seconds``.

Crash-safety contract
---------------------
A round's offers and welcomes are handed over (committed in the store) before any
checkpoint that includes the round's events; the round's hold-out assignments are
recorded before its offers (:func:`~jingxin.geofence.offers.split_holdout`: by hash, so a
replay splits the same way and records nothing new). A checkpoint writes the roaming state, then
the matcher state with the source position (each atomically: temporary file, fsync,
rename), and only then tells the source to ``commit`` (a stream acknowledges up to there).
After a crash the matcher restarts from the last checkpoint and the source replays what
came after it: the same stays (same ``entered_ms``) trigger again under the same
idempotency keys, and the delivery entry answers ``duplicate`` for what was handed over
before the crash. A :class:`~jingxin.errors.StoreError` while delivering stops the loop
with no checkpoint past the unsent offers. So no offer is sent twice for one entry and
none is forgotten, and whoever was inside is still inside after the restart.

The checkpoint is ``<[geofence] checkpoint_dir>/matcher-<shards>.npz`` (``all`` when not
sharded), the roaming state beside it (``.roaming.npz``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jingxin.data.store.models import utc_now
from jingxin.geofence.types import EventBatch, MatchResult

if TYPE_CHECKING:
    from jingxin.data.store.engine import Store
    from jingxin.data.warehouse.connection import Warehouse
    from jingxin.geofence.types import EventSource

__all__ = ["RunReport", "checkpoint_path", "read_meta", "roaming_path", "run_matcher",
           "shard_label"]

log = logging.getLogger(__name__)

SUMMARY_SECONDS = 10.0  # a one-line INFO summary this often


def shard_label(shards: list[int] | None) -> str:
    """``all``, or the shards as ranges: [0, 1, 2, 3, 6] -> ``0-3_6``."""
    if not shards:
        return "all"
    ordered, parts = sorted(set(shards)), []
    start = prev = ordered[0]
    for shard in [*ordered[1:], None]:
        if shard is not None and shard == prev + 1:
            prev = shard
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if shard is not None:
            start = prev = shard
    return "_".join(parts)


def checkpoint_path(settings: Any, shards: list[int] | None) -> Path:
    return settings.geofence_dir() / f"matcher-{shard_label(shards)}.npz"


def roaming_path(checkpoint: Path) -> Path:
    """The roaming detector's state file beside a matcher checkpoint."""
    return checkpoint.with_name(checkpoint.stem + ".roaming.npz")


@dataclass
class RunReport:
    """What one run of the matcher did (``counts`` this run's; the checkpoint keeps the
    totals since its state began)."""

    source: str
    checkpoint: str
    restored: bool = False
    fences: int = 0
    events: int = 0
    batches: int = 0
    seconds: float = 0.0  # the loop's, after the start-up (loading, restoring)
    startup_seconds: float = 0.0
    counts: Counter = field(default_factory=Counter)
    triggers: int = 0
    offers: Counter = field(default_factory=Counter)
    arrivals: int = 0
    welcomes: Counter = field(default_factory=Counter)
    checkpoints: int = 0
    position: dict[str, Any] | None = None
    stopped: str = ""  # 'exhausted' | 'max_events' | 'idle' | 'stop'
    warnings: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)  # the source's bad rows, by line

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "checkpoint": self.checkpoint, "restored": self.restored,
                "fences": self.fences, "events": self.events, "batches": self.batches,
                "seconds": round(self.seconds, 3),
                "startup_seconds": round(self.startup_seconds, 3),
                "events_per_second": round(self.events / self.seconds) if self.seconds else 0,
                "counts": dict(sorted(self.counts.items())), "triggers": self.triggers,
                "offers": dict(self.offers), "arrivals": self.arrivals,
                "welcomes": dict(self.welcomes), "checkpoints": self.checkpoints,
                "position": self.position, "stopped": self.stopped,
                "warnings": self.warnings, "samples": self.samples}  # fmt: skip


def _add(counts: Counter, key: str, n: Any) -> None:
    if n:
        counts[key] += int(n)


def run_matcher(settings: Any, store: Store, warehouse: Warehouse, source: EventSource, *,
                shards: list[int] | None = None, stop: threading.Event | None = None,
                max_events: int | None = None, idle_exit_seconds: float | None = None,
                checkpoint: Path | None = None, lease: Any = None,
                clock: Callable[[], datetime] = utc_now,
                event_time: bool = False) -> RunReport:  # fmt: skip
    """Run the matcher over ``source`` until ``stop`` is set, ``max_events`` were read,
    the source is exhausted, or no event came for ``idle_exit_seconds`` (module
    docstring). ``lease`` (a :class:`~jingxin.geofence.streams.ShardLease`) is renewed as
    the loop goes (LeaseLost stops it, with no checkpoint); ``clock`` says when offers
    are wanted and decided (tests fix it); ``event_time``: the events' own time instead
    (the newest seen), so a replay of a past morning is decided as on that morning (caps
    and quiet hours of that day). The source is the caller's to close."""
    path = checkpoint or checkpoint_path(settings, shards)
    loop = _Loop(settings, store, warehouse, source, path=path, shards=shards, lease=lease,
                 clock=clock)  # fmt: skip
    if event_time:
        loop.clock = loop.event_clock
    return loop.run(stop=stop or threading.Event(), max_events=max_events,
                    idle_exit_seconds=idle_exit_seconds)  # fmt: skip


class _Timer:
    """Due every ``seconds`` of the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.last = seconds, time.monotonic()

    def due(self, now: float) -> bool:
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


class _Loop:
    """One run of the matcher: what it holds and what each round does."""

    def __init__(self, settings: Any, store: Store, warehouse: Warehouse,
                 source: EventSource, *, path: Path, shards: list[int] | None, lease: Any,
                 clock: Callable[[], datetime]) -> None:  # fmt: skip
        from jingxin.analytics.holdout import default_share
        from jingxin.dispatch.deliver import DeliveryContext
        from jingxin.geofence.offers import utc_offset_seconds

        self.settings, self.store, self.warehouse, self.source = (settings, store, warehouse,
                                                                  source)  # fmt: skip
        self.geo = settings.geofence
        self.path, self.shards, self.lease, self.clock = path, shards, lease, clock
        self.report = RunReport(source=source.name, checkpoint=str(path))
        self.context = DeliveryContext.from_settings(settings)
        self.zone = settings.policy.default_timezone
        self.offset = utc_offset_seconds(self.zone)
        self.sender = self.geo.sender or settings.journeys.hall_number
        self.holdout = default_share(settings)  # of marketing fences that set none
        self.base: Counter = Counter()  # the checkpoint's totals before this run
        self.detector: Any = None
        self.timers = {"lease": _Timer(self.geo.lease_seconds / 3),
                       "fences": _Timer(self.geo.fences_refresh_seconds),
                       "audiences": _Timer(self.geo.audience_refresh_seconds),
                       "checkpoint": _Timer(self.geo.checkpoint_seconds),
                       "summary": _Timer(SUMMARY_SECONDS)}

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        from jingxin.geofence.audience import refresh_audiences
        from jingxin.geofence.directory import CellIndex, Directory
        from jingxin.geofence.matcher import Matcher
        from jingxin.geofence.registry import list_fences, store_version

        self.cells = CellIndex.from_warehouse(self.warehouse)
        self.directory = Directory.from_warehouse(self.warehouse)
        self.fence_version = store_version(self.store)
        self.compiled = self._compile(list_fences(self.store, enabled_only=True))
        refresh_audiences(self.compiled, self.directory, self.warehouse)
        if self.path.exists():
            self.matcher, extra = Matcher.restore(self.path, self.compiled, self.directory,
                                                  self.cells, utc_offset_seconds=self.offset)
            self.base = Counter({k: int(v) for k, v in (extra.get("counts") or {}).items()})
            self.report.restored = True
            log.info("fence matcher: restored %s (%d inside, position %s)", self.path,
                     len(self.matcher.state.open), extra.get("position"))  # fmt: skip
        else:
            self.matcher = Matcher(self.compiled, self.directory, self.cells,
                                   utc_offset_seconds=self.offset)  # fmt: skip
        if self.geo.roaming:
            self._start_roaming()

    def _start_roaming(self) -> None:
        from jingxin.geofence.roaming import RoamingDetector, salutations

        self.detector = RoamingDetector.from_settings(
            self.settings, len(self.directory),
            salutation_codes=salutations(self.warehouse, self.directory))  # fmt: skip
        saved = roaming_path(self.path)
        if self.report.restored and saved.exists():
            self.detector.load(saved, self.directory)

    def _compile(self, fences: list) -> Any:
        from jingxin.geofence.compiled import CompiledFences

        compiled = CompiledFences.build(fences, self.cells)
        for warning in compiled.warnings:
            log.warning("fence matcher: %s", warning)
        self.report.warnings = list(compiled.warnings)
        self.report.fences = len(compiled.fences)
        return compiled

    # ------------------------------------------------------------------ the loop

    def run(self, *, stop: threading.Event, max_events: int | None,
            idle_exit_seconds: float | None) -> RunReport:  # fmt: skip
        began = time.monotonic()
        self.start()
        started = last_event = time.monotonic()
        self.report.startup_seconds = started - began
        while True:
            reason = self._stopping(stop, max_events)
            if reason:
                break
            batch = self.source.read(self._wanted(max_events), self.geo.block_ms)
            if batch is None:
                reason = "exhausted"
                break
            now = time.monotonic()
            if len(batch):
                last_event = now
                self._round(batch)
            elif idle_exit_seconds is not None and now - last_event >= idle_exit_seconds:
                reason = "idle"
                break
            self._sweep(force=not len(batch))
            self._housekeeping(time.monotonic())
        self._sweep(force=True)
        self._checkpoint()
        self.report.stopped = reason
        self.report.seconds = time.monotonic() - started
        self.report.counts.update(self.source.counts())
        self.report.samples = [str(x) for x in getattr(self.source, "samples", ())]
        self._summary(final=True)
        return self.report

    def _stopping(self, stop: threading.Event, max_events: int | None) -> str:
        if stop.is_set():
            return "stop"
        if max_events is not None and self.report.events >= max_events:
            return "max_events"
        return ""

    def _wanted(self, max_events: int | None) -> int:
        if max_events is None:
            return self.geo.batch_size
        return max(1, min(self.geo.batch_size, max_events - self.report.events))

    def _round(self, batch: EventBatch) -> None:
        cell_idx = self.cells.lookup(batch.cell)
        result = self.matcher.process(batch, cell_idx)
        self.report.events += len(batch)
        self.report.batches += 1
        self.report.counts.update(result.counts)
        self._offer(result)
        self._roam(batch, cell_idx)

    def _sweep(self, *, force: bool) -> None:
        """Decide the stays whose dwell the newest event time has passed. Every round, not
        on a wall-clock timer: a replay then decides the same stays at the same times
        however fast it runs (a sweep costs one pass over the open stays)."""
        if self.matcher.watermark_ms < 0:
            return
        result = self.matcher.sweep(self.matcher.watermark_ms)
        self.report.counts.update(result.counts)
        self._offer(result)

    def event_clock(self) -> datetime:
        """The newest event time seen (a replay's clock); the wall clock before any."""
        watermark = self.matcher.watermark_ms if hasattr(self, "matcher") else 0
        if watermark <= 0:
            return utc_now()
        return datetime.fromtimestamp(watermark / 1000, UTC)

    def _offer(self, result: MatchResult) -> None:
        from jingxin.geofence.offers import (
            HOLDOUT_REASON,
            deliver_offers,
            offer_deliveries,
            split_holdout,
        )

        triggers = result.triggers
        if not len(triggers):
            return
        now = self.clock()
        # Held out before policy, recorded before the treated offers are handed over.
        treated, arms, held = split_holdout(self.store, triggers, self.compiled,
                                            default_share=self.holdout, now=now)  # fmt: skip
        deliveries = offer_deliveries(treated, self.compiled, sender=self.sender, now=now,
                                      zone=self.zone, arms=arms)  # fmt: skip
        outcomes = deliver_offers(self.store, self.context, deliveries, now=now)
        if held:
            outcomes[HOLDOUT_REASON] += held
        self.report.triggers += len(triggers)
        self.report.offers.update({k: v for k, v in outcomes.items() if ":" not in k})
        self.report.counts.update({f"offer_{k.replace(':', '_')}": v for k, v in outcomes.items()})

    def _roam(self, batch: EventBatch, cell_idx: np.ndarray) -> None:
        sub_idx = self.directory.lookup(batch.msisdn)
        if self.detector is None:
            _add(self.report.counts, "unknown_cell",
                 np.count_nonzero((cell_idx < 0) & (sub_idx >= 0)))
            return
        arrivals, unplaced = self.detector.observe(batch, cell_idx, sub_idx)
        _add(self.report.counts, "unknown_cell", np.count_nonzero(unplaced & (sub_idx >= 0)))
        if not len(arrivals):
            return
        self.report.arrivals += len(arrivals)
        self.report.counts["arrivals"] += len(arrivals)
        outcomes = self.detector.welcome(self.store, self.context, self.settings, arrivals,
                                         self.directory, now=self.clock())  # fmt: skip
        self.report.welcomes.update(outcomes)
        self.report.counts.update({f"welcome_{k}": v for k, v in outcomes.items()})

    # ------------------------------------------------------------------ housekeeping

    def _housekeeping(self, now: float) -> None:
        if self.lease is not None and self.timers["lease"].due(now):
            self.lease.renew()
        if self.timers["fences"].due(now):
            self._reload_fences()
        if self.timers["audiences"].due(now):
            self._refresh_audiences()
        if self.timers["checkpoint"].due(now):
            self._checkpoint()
        if self.timers["summary"].due(now):
            self._summary()

    def _refresh_audiences(self) -> None:
        """The directory re-read (new subscribers become known; the state follows the
        numbers), then every fence's audience and residents."""
        from jingxin.geofence.audience import refresh_audiences
        from jingxin.geofence.directory import Directory

        directory = Directory.from_warehouse(self.warehouse)
        if directory.fingerprint() != self.directory.fingerprint():
            self.matcher.set_directory(directory)
            if self.detector is not None:
                from jingxin.geofence.roaming import salutations

                self.detector.set_directory(self.directory, directory,
                                            salutations(self.warehouse, directory))  # fmt: skip
            log.info("fence matcher: directory reloaded, %d subscribers", len(directory))
            self.directory = directory
        refresh_audiences(self.compiled, self.directory, self.warehouse)

    def _reload_fences(self) -> None:
        from jingxin.geofence.audience import refresh_audiences
        from jingxin.geofence.registry import list_fences, store_version

        version = store_version(self.store)
        if version == self.fence_version:
            return
        compiled = self._compile(list_fences(self.store, enabled_only=True))
        refresh_audiences(compiled, self.directory, self.warehouse)
        self.matcher.set_fences(compiled)
        self.compiled, self.fence_version = compiled, version
        log.info("fence matcher: fences reloaded, %d enabled", len(compiled.fences))

    def totals(self) -> Counter:
        """Counts since the checkpointed state began (the last checkpoint's + this run's)."""
        return self.base + self.report.counts + self.source.counts()

    def _checkpoint(self) -> None:
        position = self.source.position()
        extra = {"position": position, "source": self.source.name, "shards": self.shards,
                 "counts": dict(self.totals()), "saved_at": utc_now().isoformat(),
                 "roaming": self.detector is not None}  # fmt: skip
        if self.detector is not None:  # first: never older than the events replayed
            self.detector.save(roaming_path(self.path), self.directory)
        self.matcher.checkpoint(self.path, extra)
        self.source.commit(position)
        self.report.checkpoints += 1
        self.report.position = position

    def _summary(self, *, final: bool = False) -> None:
        r = self.report
        rate = r.events / r.seconds if final and r.seconds else None
        offers = ", ".join(f"{k} {v}" for k, v in sorted(r.offers.items())) or "none"
        log.info("fence matcher%s: %d events%s, %d triggers (offers %s), %d arrivals, "
                 "%d inside now, %d off grid, %d unknown cells", " done" if final else "",
                 r.events, f" ({rate:,.0f}/s)" if rate else "", r.triggers, offers,
                 r.arrivals, len(self.matcher.state.open), r.counts["off_grid"],
                 r.counts["unknown_cell"])  # fmt: skip


def read_meta(path: Path) -> dict[str, Any]:
    """A checkpoint's ``extra`` (position, counts, fence codes, saved_at, ...) and its
    ``watermark_ms``, without loading its arrays (an npz member is read on demand)."""
    import json
    import zipfile

    from jingxin.errors import InputError

    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"checkpoint {path}: not a geofence matcher state ({exc})") from exc
    if not isinstance(meta, dict):
        raise InputError(f"checkpoint {path}: not a geofence matcher state")
    return {**dict(meta.get("extra") or {}), "watermark_ms": meta.get("watermark_ms")}
