"""``jingxin fence publish`` and ``jingxin fence streams``: feeding the location streams and
looking at them.

- ``jingxin fence publish FILE [--speed X] [--streams N] [--start-row R] [--redis URL]``:
  replays a CSV or Parquet file of events (msisdn,cell,ts,type) into the streams, sharded
  by number; ``--speed 60`` replays an hour of events in a minute (default: as fast as
  possible). Prints the events written and the malformed rows with a few samples; on
  Ctrl-C, the row to resume from.
- ``jingxin fence streams [--json] [--redis URL]``: per stream its length, the matchers'
  group's pending entries and lag, its consumers and last entry (an entry is a block of up
  to 500 events, in order).

Redis is ``--redis``, else ``[redis] url``; the streams' names and count are
``[geofence] stream_prefix`` / ``streams``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.errors import ConfigError, InputError

if TYPE_CHECKING:
    from jingxin.config import Settings

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

RedisOption = Annotated[str | None, typer.Option(
    "--redis", help="Redis URL (default: redis.url).")]  # fmt: skip
StreamsOption = Annotated[int | None, typer.Option(
    "--streams", min=1, max=1024, help="Shard over this many streams (default: geofence."
                                       "streams; the matchers must use the same).")]  # fmt: skip


def _redis(settings: Settings, url: str | None) -> tuple[Any, str]:
    """A client for ``--redis`` or ``[redis] url``, checked with a PING."""
    from redis.exceptions import RedisError

    from jingxin.geofence.streams import connect

    target = url or settings.redis.url
    if not target:
        raise ConfigError("no Redis for the location streams: set [redis] url or pass --redis")
    try:
        client = connect(target)
        client.ping()
    except (RedisError, ValueError) as exc:
        option = "--redis" if url else "[redis] url"
        raise ConfigError(f"{option} {target}: cannot reach Redis ({exc})") from exc
    return client, target


def publish_command(
    file: Annotated[Path, typer.Argument(help="CSV (header msisdn,cell,ts,type) or Parquet "
                                              "file of location events.", show_default=False)],
    speed: Annotated[float | None, typer.Option(
        "--speed", help="Pace by event time, this many times faster (60: an hour in a "
                        "minute; default: as fast as possible).")] = None,
    streams: StreamsOption = None,
    start_row: Annotated[int, typer.Option(
        "--start-row", min=0, help="Skip this many data rows (resume an interrupted run).")] = 0,
    redis_url: RedisOption = None,
) -> None:
    """Replay a file of location events into the Redis streams the matchers read."""
    from redis.exceptions import RedisError

    from jingxin.config import load_settings
    from jingxin.geofence.sources import FileReplay
    from jingxin.geofence.streams import publish

    settings = load_settings()
    geo = settings.geofence
    shards = streams or geo.streams
    if speed is not None and speed <= 0:
        raise InputError(f"--speed: {speed} must be positive")
    source = FileReplay(file, speed=speed, start_row=start_row)
    client, target = _redis(settings, redis_url)
    written, started = 0, time.monotonic()
    try:
        while (batch := source.read(geo.batch_size, block_ms=200)) is not None:
            if len(batch):
                written += publish(client, batch, prefix=geo.stream_prefix, shards=shards,
                                   maxlen=geo.max_stream_length)  # fmt: skip
    except KeyboardInterrupt:
        console.print(f"interrupted: resume with --start-row {source.position()['row']}")
    except RedisError as exc:
        raise ConfigError(f"{target}: writing the streams failed after {written} events "
                          f"({exc}); resume with --start-row {source.position()['row']}") from exc
    finally:
        source.close()
        client.close()
    _print_published(source, written, shards=shards, prefix=geo.stream_prefix,
                     seconds=time.monotonic() - started)  # fmt: skip


def _print_published(source: Any, written: int, *, shards: int, prefix: str,
                     seconds: float) -> None:  # fmt: skip
    rate = f", {written / seconds:,.0f}/s" if seconds > 0 and written else ""
    console.print(f"written {written} events to {shards} streams {prefix}:0..{shards - 1} "
                  f"({source.position()['row']} rows read{rate})")
    malformed = source.counts().get("malformed", 0)
    console.print(f"malformed rows: {malformed}" + (" (skipped), e.g.:" if malformed else ""))
    for sample in source.samples:
        console.print(Text(f"  {sample}"))


def streams_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    redis_url: RedisOption = None,
    streams: StreamsOption = None,
) -> None:
    """Each location stream: length, the matchers' pending entries and lag, consumers
    (an entry is a block of up to 500 events)."""
    from jingxin.config import load_settings
    from jingxin.geofence.streams import stream_stats

    settings = load_settings()
    geo = settings.geofence
    client, _ = _redis(settings, redis_url)
    try:
        rows = stream_stats(client, prefix=geo.stream_prefix, shards=streams or geo.streams,
                            group=geo.group)  # fmt: skip
    finally:
        client.close()
    if as_json:
        typer.echo(json.dumps({"group": geo.group, "streams": rows}, indent=2))
        return
    _print_stats(rows, group=geo.group)


def _print_stats(rows: list[dict[str, Any]], *, group: str) -> None:
    now_ms = time.time() * 1000

    def show(value: Any) -> str:
        return "-" if value is None else str(value)

    table = Table("stream", "length", "pending", "lag", "consumers", "last entry", "age",
                  title=f"location streams, group {group}")
    for r in rows:
        last = r["last_entry_id"]
        age = f"{(now_ms - int(last.split('-')[0])) / 1000:.0f} s" if last else "-"
        name = r["stream"] if r["exists"] else f"{r['stream']} (missing)"
        table.add_row(Text(name), str(r["length"]), show(r["pending"]), show(r["lag"]),
                      show(r["consumers"]), show(last), age)  # fmt: skip
    table.add_row("all", str(sum(r["length"] for r in rows)),
                  str(sum(r["pending"] or 0 for r in rows)),
                  str(sum(r["lag"] or 0 for r in rows)), "", "", "")  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``publish`` and ``streams`` to the ``jingxin fence`` group."""
    app.command("publish")(publish_command)
    app.command("streams")(streams_command)
