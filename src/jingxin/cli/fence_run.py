"""``jingxin fence run|stats|inside``: the matcher loop and what its checkpoints hold.

- ``jingxin fence run [--replay FILE [--speed X] | --redis [--shards 0-3]] [--max-events N]
  [--idle-exit S] [--warehouse W] [--json]``: run the matcher (:mod:`jingxin.geofence.
  runner`) over a replay file (resumed from the checkpoint's row when it is the same file)
  or the Redis streams (the default when ``[redis] url`` is set; every shard unless
  ``--shards``, each held by a lease). Ctrl-C / SIGTERM stop it after a last checkpoint.
  Prints the run's report;
- ``jingxin fence stats [--json]``: per checkpoint file: when it was saved, the source
  position, the counts since its state began, who is inside each fence now;
- ``jingxin fence inside NUMBER``: the fences a number is inside now, per the checkpoints
  (the number masked in the output).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.errors import InputError
from jingxin.logs import mask_text

if TYPE_CHECKING:
    from collections.abc import Iterator

    from jingxin.geofence.runner import RunReport

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def parse_shards(text: str | None, streams: int, *, option: str = "--shards") -> list[int]:
    """``0-3,6`` -> [0, 1, 2, 3, 6]; None: every shard. Out of range is an InputError."""
    if text is None:
        return list(range(streams))
    shards: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise InputError(f"{option}: {part!r} is not a shard or a range (e.g. 0-3,6)") from None
        if not 0 <= first <= last < streams:
            raise InputError(f"{option}: {part!r} is outside 0-{streams - 1} "
                             "([geofence] streams)")  # fmt: skip
        shards.update(range(first, last + 1))
    return sorted(shards)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM (the loop then checkpoints and returns)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in before:
        signal.signal(s, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _position(path: Path) -> dict[str, Any] | None:
    from jingxin.geofence.runner import read_meta

    return read_meta(path).get("position") if path.exists() else None


def _run(settings: Any, store: Any, wh: Any, *, replay: Path | None, speed: float | None,
         shards_text: str | None, stop: threading.Event, **options: Any) -> RunReport:  # fmt: skip
    from jingxin.geofence.offers import utc_offset_seconds
    from jingxin.geofence.runner import checkpoint_path, run_matcher
    from jingxin.geofence.sources import FileReplay

    if replay is not None:
        path = checkpoint_path(settings, None)
        position = _position(path) or {}
        same = Path(str(position.get("file"))).resolve() == replay.resolve()
        row = position.get("row", 0) if same else 0
        source = FileReplay(replay, speed=speed, start_row=int(row),
                            utc_offset_seconds=utc_offset_seconds(
                                settings.policy.default_timezone))  # fmt: skip
        try:
            return run_matcher(settings, store, wh, source, stop=stop, **options)
        finally:
            source.close()
    return _run_redis(settings, store, wh, shards_text=shards_text, stop=stop, **options)


def _run_redis(settings: Any, store: Any, wh: Any, *, shards_text: str | None,
               stop: threading.Event, **options: Any) -> RunReport:  # fmt: skip
    from jingxin.geofence.runner import checkpoint_path, run_matcher, shard_label
    from jingxin.geofence.streams import RedisStreamSource, ShardLease, connect

    geo = settings.geofence
    shards = parse_shards(shards_text, geo.streams)
    path = checkpoint_path(settings, shards)
    client = connect(settings.redis.url)
    # The consumer name stays the same for a shard set: a restarted matcher reads the
    # entries its predecessor left pending. The lease owner is this process.
    lease = ShardLease(client, prefix=geo.stream_prefix, owner=f"{socket.gethostname()}:"
                       f"{os.getpid()}", ttl_ms=int(geo.lease_seconds * 1000))  # fmt: skip
    lease.acquire(shards)
    try:
        source = RedisStreamSource(client, prefix=geo.stream_prefix, group=geo.group,
                                   consumer=f"matcher-{shard_label(shards)}", shards=shards,
                                   start_after=_position(path))  # fmt: skip
        return run_matcher(settings, store, wh, source, shards=shards, stop=stop, lease=lease,
                           **options)  # fmt: skip
    finally:
        lease.release()
        client.close()


def _forget(settings: Any, shards_text: str | None, *, streams: bool) -> None:
    """Delete the checkpoint (and the roaming state beside it) the run would resume from:
    a replay's (``matcher-all``), or the shard set's a stream run reads (every shard when
    ``--shards`` is not given, as :func:`_run_redis` does)."""
    from jingxin.geofence.runner import checkpoint_path, roaming_path

    shards = parse_shards(shards_text, settings.geofence.streams) if streams else None
    path = checkpoint_path(settings, shards)
    for stale in (path, roaming_path(path)):
        stale.unlink(missing_ok=True)


def run_command(
    replay: Annotated[Path | None, typer.Option(
        "--replay", help="Replay this CSV/Parquet file (msisdn,cell,ts,type).")] = None,
    speed: Annotated[float | None, typer.Option(
        "--speed", help="Pace the replay at this many times event time (default: no pacing).",
    )] = None,
    use_redis: Annotated[bool, typer.Option(
        "--redis", help="Read the Redis streams (default when redis.url is set).")] = False,
    shards: Annotated[str | None, typer.Option(
        "--shards", help="Shards to read, e.g. 0-3 or 0,2 (default: all).")] = None,
    max_events: Annotated[int | None, typer.Option(
        "--max-events", min=1, help="Stop after this many events.")] = None,
    idle_exit: Annotated[float | None, typer.Option(
        "--idle-exit", min=0, help="Stop after this many seconds without an event.")] = None,
    warehouse: Annotated[Path | None, typer.Option(
        "--warehouse", help="DuckDB warehouse file (default: warehouse.path).")] = None,
    event_time: Annotated[bool, typer.Option(
        "--event-time", help="Decide offers at the events' time, not now (replaying a past "
        "day: that day's caps and quiet hours).")] = False,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Forget the checkpoint first (state and position): a replay starts "
        "over, and an offer already sent answers 'duplicate'.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the geofence matcher: events in, offers and roaming welcomes out."""
    from jingxin.cli.arguments import read_warehouse, settings_and_store

    if replay is not None and (use_redis or shards is not None):
        raise InputError("--replay: give a replay file or --redis/--shards, not both")
    if speed is not None and replay is None:
        raise InputError("--speed: paces a replay; give --replay FILE")
    settings, store = settings_and_store()
    if replay is None and not settings.redis.url:
        store.dispose()
        option = "--redis" if use_redis or shards is not None else "--replay"
        raise InputError(f"{option}: no event source: give --replay FILE, or set [redis] url "
                         "to read the streams")  # fmt: skip
    try:
        if fresh:
            _forget(settings, shards, streams=replay is None)
        with read_warehouse(settings, warehouse) as wh, _stop_on_signals() as stop:
            report = _run(settings, store, wh, replay=replay, speed=speed, shards_text=shards,
                          stop=stop, max_events=max_events, idle_exit_seconds=idle_exit,
                          event_time=event_time)  # fmt: skip
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    _print_report(report)


def _print_report(report: RunReport) -> None:
    rate = f"{report.events / report.seconds:,.0f}/s" if report.seconds else "-"
    console.print(f"fence run ({report.source}): {report.events:,} events in "
                  f"{report.seconds:.1f} s ({rate}), stopped: {report.stopped}"
                  + (", restored from the checkpoint" if report.restored else ""))  # fmt: skip
    table = Table(title="counts")
    table.add_column("count")
    table.add_column("n", justify="right")
    for name, n in sorted(report.counts.items()):
        table.add_row(name, f"{n:,}")
    console.print(table)
    console.print(f"offers: {_outcomes(report.offers)}; roaming: {report.arrivals} arrival(s), "
                  f"welcomes {_outcomes(report.welcomes)}")  # fmt: skip
    console.print(f"checkpoint: {report.checkpoint} ({report.checkpoints} saved), "
                  f"position {json.dumps(report.position, ensure_ascii=False)}")  # fmt: skip
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if report.samples:
        console.print(f"bad rows (first {len(report.samples)}):")
        for sample in report.samples:
            console.print(Text(f"  {mask_text(sample)}"))


def _outcomes(counts: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


# ------------------------------------------------------------------ stats, inside


def _checkpoints(settings: Any) -> list[Path]:
    folder = settings.geofence_dir()
    found = sorted(p for p in folder.glob("matcher-*.npz") if not p.name.endswith(".roaming.npz"))
    if not found:
        raise InputError(f"[geofence] checkpoint_dir: no matcher checkpoint in {folder} "
                         "(run `jingxin fence run` first)")  # fmt: skip
    return found


def checkpoint_stats(path: Path) -> dict[str, Any]:
    """What one checkpoint holds: saved at, position, counts, inside now per fence."""
    import numpy as np

    from jingxin.geofence.state import FENCE_MASK, MatcherState

    state, extra = MatcherState.load(path)
    codes = list(extra.get("fences") or [])
    per_fence = np.bincount((state.open_key & FENCE_MASK).astype(np.int64),
                            minlength=len(codes))  # fmt: skip
    inside = {code: int(n) for code, n in zip(codes, per_fence.tolist(), strict=False) if n}
    return {"file": str(path), "saved_at": extra.get("saved_at"), "source": extra.get("source"),
            "position": extra.get("position"), "watermark": _instant(state.watermark_ms),
            "subscribers": len(state.msisdn), "inside": len(state.open_key),
            "inside_by_fence": inside, "state_bytes": state.memory_bytes(),
            "counts": dict(sorted((extra.get("counts") or {}).items()))}  # fmt: skip


def _instant(epoch_ms: int) -> str | None:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat() if epoch_ms >= 0 else None


def stats_command(as_json: JsonOption = False) -> None:
    """What the matcher's checkpoints hold: counts, who is inside each fence, position."""
    from jingxin.config import load_settings

    stats = [checkpoint_stats(p) for p in _checkpoints(load_settings())]
    if as_json:
        typer.echo(json.dumps(stats, ensure_ascii=False))
        return
    for s in stats:
        console.print(f"{s['file']}: saved {s['saved_at']}, {s['inside']:,} inside now, "
                      f"events up to {s['watermark']}, position "
                      f"{json.dumps(s['position'], ensure_ascii=False)}")  # fmt: skip
        table = Table(title="inside now by fence")
        table.add_column("fence")
        table.add_column("inside", justify="right")
        for code, n in sorted(s["inside_by_fence"].items(), key=lambda kv: -kv[1]):
            table.add_row(code, f"{n:,}")
        console.print(table)
        console.print(f"counts: {_outcomes(s['counts'])}")


def inside_command(
    number: Annotated[str, typer.Argument(help="The number, e.g. 13912345678.",
                                          show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """The fences a number is inside now, per the matcher's checkpoints."""
    import numpy as np

    from jingxin.config import load_settings
    from jingxin.geofence.state import MatcherState
    from jingxin.geofence.types import msisdn_text, to_msisdn_int
    from jingxin.logs import mask

    digits, bad = to_msisdn_int([number])
    if bad[0]:
        raise InputError(f"NUMBER: {number!r} is not a Chinese mobile number")
    rows = []
    for path in _checkpoints(load_settings()):
        state, extra = MatcherState.load(path)
        codes = list(extra.get("fences") or [])
        at = int(np.searchsorted(state.msisdn, digits[0]))
        if at < len(state.msisdn) and state.msisdn[at] == digits[0]:
            rows += [{"fence": codes[f] if f < len(codes) else f"#{f}",
                      "entered": _instant(entered), "checkpoint": str(path)}
                     for f, entered in state.inside(at)]  # fmt: skip
    shown = mask(msisdn_text(int(digits[0])))
    if as_json:
        typer.echo(json.dumps({"msisdn": shown, "inside": rows}, ensure_ascii=False))
        return
    if not rows:
        console.print(f"{shown} is inside no fence")
        return
    for row in rows:
        console.print(f"{shown} inside {row['fence']} since {row['entered']}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("stats")(stats_command)
    app.command("inside")(inside_command)
