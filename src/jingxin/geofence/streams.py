"""Location events over Redis Streams: subscribers sharded over N streams by a hash of the
number (each subscriber's events stay in one stream, in order), read by matchers in one
consumer group, each matcher holding a lease on the shards it reads
(:mod:`jingxin.geofence.leases`).

Crash-safety contract: an entry is acknowledged (XACK) only by ``commit(position)``, which
the runner calls once a checkpoint holding that position is durable. A matcher that dies
leaves its entries pending; the next one with the same consumer name reads its own pending
entries first (XREADGROUP id 0), acks those the checkpoint already holds (id <=
``start_after``) and replays the rest, so an event is neither lost nor applied twice.
A stream that disappears (deleted, Redis restarted empty) gets its group back at id 0 and
reading goes on; a lost connection is retried with backoff while ``read`` returns empty
batches, so the runner can still checkpoint and stop.

An entry is a block of events (field ``b``: lines ``msisdn,cell,ts_ms,kind``, see
:mod:`jingxin.geofence.streamcodec`); entries of one event each (fields ``m``, ``c``, ``t``,
``k``) are read too. Acks, positions, pending entries and stream lengths all count entries:
a block is acknowledged, replayed or trimmed whole.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from typing import Any

import numpy as np
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jingxin.errors import InputError
from jingxin.geofence.leases import LeaseLost, ShardLease
from jingxin.geofence.sources import MAX_SAMPLES, cell_array
from jingxin.geofence.streamcodec import (
    BLOCK_EVENTS,
    MSISDN_RANGE,
    Lines,
    check_cells,
    decode,
    entry_events,
    id_parts,
)
from jingxin.geofence.types import EventBatch, shard_of

# LeaseLost and ShardLease live in :mod:`jingxin.geofence.leases`; imported from here too.
__all__ = ["BLOCK_EVENTS", "MSISDN_RANGE", "PIPELINE_CHUNK", "LeaseLost", "RedisStreamSource",
           "ShardLease", "connect", "publish", "stream_key", "stream_stats"]  # fmt: skip

log = logging.getLogger(__name__)

PIPELINE_CHUNK = 5000  # events per scripted XADD call / XACK ids per round trip
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_BACKOFF = (0.1, 5.0)  # first and longest wait (seconds) after a failed round trip


def connect(url: str) -> Any:
    """A Redis client fit for the streams: RESP2 (its replies parse faster in redis-py),
    few quick retries (a source does its own backoff and must not hang in the client's),
    a socket timeout well above any read's BLOCK. Install ``hiredis`` for ~3x faster reads."""
    import redis
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, protocol=2, socket_connect_timeout=2, socket_timeout=30,
                                retry=Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05),
                                            retries=2))  # fmt: skip


def stream_key(prefix: str, shard: int) -> str:
    return f"{prefix}:{shard}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id(value: Any) -> tuple[int, int]:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


# ----------------------------------------------------------------------------- publish


# The same XADD (MAXLEN ~) per block, run by Redis for a few blocks of one shard: one
# round trip per call however many blocks it carries (pipelined as well).
_XADD_BLOCKS = """
local key, maxlen = KEYS[1], ARGV[1]
for i = 2, #ARGV do
  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'b', ARGV[i])
end
return #ARGV - 1
"""


def publish(client: Any, batch: EventBatch, *, prefix: str, shards: int, maxlen: int,
            block: int = BLOCK_EVENTS) -> int:  # fmt: skip
    """Append ``batch`` to the streams (``<prefix>:<shard>``, shard by number) in entries
    of up to ``block`` events, each subscriber's events in batch order; the number of
    events written. ``maxlen`` is about how many events a stream keeps: Redis trims entries,
    so it becomes entries at this call's events per entry. A cell that a block line cannot
    carry (a comma, a line break, none) refuses the batch before anything is written
    (InputError); Redis errors are raised as they come (RedisError)."""
    if block < 1:
        raise InputError(f"block: {block} events per entry; at least 1")
    if not len(batch):
        return 0
    shard = shard_of(batch.msisdn, shards)
    order = np.argsort(shard, kind="stable")  # stable: batch order kept within a shard
    bounds = np.searchsorted(shard[order], np.arange(shards + 1)).tolist()
    cells = cell_array(batch.cell)
    check_cells(cells)
    lines = Lines(batch.msisdn[order], cells.take(order), batch.ts[order], batch.kind[order])
    entries = sum(math.ceil((bounds[k + 1] - bounds[k]) / block) for k in range(shards))
    limit = max(1, math.ceil(maxlen * entries / len(batch)))
    xadd_blocks = client.register_script(_XADD_BLOCKS)
    per_call = max(1, PIPELINE_CHUNK // block)
    pipe, queued = client.pipeline(transaction=False), 0
    for k_shard in range(shards):
        blocks = lines.blocks(bounds[k_shard], bounds[k_shard + 1], block)
        for start in range(0, len(blocks), per_call):
            xadd_blocks(keys=[stream_key(prefix, k_shard)],
                        args=[limit, *blocks[start:start + per_call]], client=pipe)  # fmt: skip
            queued += 1
            if queued >= 4:
                pipe.execute()
                pipe, queued = client.pipeline(transaction=False), 0
    if queued:
        pipe.execute()
    return len(batch)


# ----------------------------------------------------------------------------- reading


class RedisStreamSource:
    """The events of ``shards`` read in consumer group ``group`` as ``consumer``.

    XREADGROUP replies are walked raw: the source sets a pass-through reply callback for
    XREADGROUP on ``client`` (redis-py's own builds a dict per entry, a fifth of a read's
    time). COUNT is in entries: ``read`` asks for about ``max_events`` at the events per
    entry of the last read (``block`` until there is one), so blocks and one-event entries
    both come in batches near ``max_events``; a read right after one-event entries gave
    way to blocks may bring up to ``block`` times more, once."""

    def __init__(self, client: Any, *, prefix: str, group: str, consumer: str,
                 shards: list[int], start_after: dict[str, str] | None = None,
                 block: int = BLOCK_EVENTS) -> None:  # fmt: skip
        if not shards:
            raise InputError("shards: a stream source needs at least one shard")
        client.set_response_callback("XREADGROUP", _raw_reply)
        self.client = client
        self.group, self.consumer = group, consumer
        self.streams = [stream_key(prefix, k) for k in sorted(set(shards))]
        self.name = f"redis:{prefix}:{','.join(str(k) for k in sorted(set(shards)))}"
        self.samples: list[str] = []
        self._after = {s: _id(v) for s, v in (start_after or {}).items()}
        self._position: dict[str, str] = {s: _text(v) for s, v in (start_after or {}).items()}
        self._unacked: dict[str, _ReadIds] = {s: _ReadIds() for s in self.streams}
        self._pel: dict[str, str] = {s: "0" for s in self.streams}  # replay cursor per stream
        self._counts: Counter = Counter()
        self._per_entry = float(max(1, block))  # events per entry, as the last read found
        self._groups_ready = False
        self._failures = 0
        self._retry_at = 0.0

    # -- the EventSource contract -----------------------------------------------------

    def read(self, max_events: int, block_ms: int) -> EventBatch | None:
        """Pending entries first, then new ones (waiting up to ``block_ms``); an empty
        batch while Redis is unreachable. Never None: a stream has no end."""
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, max(block_ms, 0) / 1000))
            return EventBatch.empty()
        # COUNT is entries, per stream
        per_stream = max(1, math.ceil(max_events / (self._per_entry * len(self.streams))))
        try:
            if not self._groups_ready:
                self._create_groups(recreate=False)
            while self._pel:
                batch = self._read_pending(per_stream)
                if len(batch):
                    self._failures = 0
                    return batch
            reply = self.client.xreadgroup(self.group, self.consumer,
                                           {s: ">" for s in self.streams}, count=per_stream,
                                           block=block_ms if block_ms > 0 else None)  # fmt: skip
            self._failures = 0
            return self._decode(reply)
        except ResponseError as exc:
            if "NOGROUP" in str(exc) or "no longer exists" in str(exc):
                self._recover(self._create_groups, recreate=True)
                return EventBatch.empty()
            if "WRONGTYPE" in str(exc):
                raise InputError(f"{self.name}: a key of these streams is no stream: "
                                 f"{exc}") from exc  # fmt: skip
            raise
        except _UNREACHABLE as exc:
            self._unreachable("read", exc)
            return EventBatch.empty()

    def position(self) -> dict[str, Any]:
        return dict(self._position)

    def commit(self, position: dict[str, Any]) -> None:
        """Acknowledge every entry read up to ``position`` (a checkpoint now holds them)."""
        done: dict[str, int] = {}
        pipe = self.client.pipeline(transaction=False)
        for stream, upto in position.items():
            read = self._unacked.get(stream)
            if read is None or not len(read):
                continue
            n = read.count_upto(_id(upto))
            for start in range(0, n, PIPELINE_CHUNK):
                pipe.xack(stream, self.group, *read.ids[start:min(n, start + PIPELINE_CHUNK)])
            done[stream] = n
        if not any(done.values()):
            return
        try:
            pipe.execute()
        except _UNREACHABLE as exc:  # kept: acked at the next commit
            self._unreachable("ack", exc)
            return
        for stream, n in done.items():
            self._unacked[stream].drop(n)

    def counts(self) -> Counter:
        return Counter(self._counts)

    def close(self) -> None:
        return None  # the client is the caller's; unacked entries stay pending on purpose

    # -- reading ------------------------------------------------------------------------

    def _read_pending(self, count: int) -> EventBatch:
        """One page of this consumer's pending entries (delivered before, never acked)."""
        reply = self.client.xreadgroup(self.group, self.consumer, dict(self._pel), count=count)
        got = {stream: entries for stream, entries in _streams(reply)}
        for stream in list(self._pel):
            if not got.get(stream):
                del self._pel[stream]  # this stream's pending entries are all replayed
        fresh: list[tuple[str, list]] = []
        stale: dict[str, list] = {}
        for stream, entries in got.items():
            if stream not in self._pel or not entries:
                continue
            self._pel[stream] = _text(entries[-1][0])
            after = self._after.get(stream, (-1, -1))
            keep = [e for e in entries if _id(e[0]) > after]
            if len(keep) < len(entries):
                stale[stream] = [e for e in entries if _id(e[0]) <= after]
            fresh.append((stream, keep))
        if stale:  # the checkpoint holds these already: acknowledge, do not replay
            pipe = self.client.pipeline(transaction=False)
            for stream, old in stale.items():
                pipe.xack(stream, self.group, *[e[0] for e in old])
                self._count("checkpointed", sum(entry_events(e[1]) for e in old))
            pipe.execute()
        batch = self._decode(fresh)
        self._count("replayed", len(batch))
        return batch

    def _decode(self, reply: Any) -> EventBatch:
        """Entries as one batch; malformed events (and entries trimmed away while pending)
        are counted and their entries acknowledged with the rest."""
        parts = []
        for stream, entries in _streams(reply):
            if not entries:
                continue
            ids = [e[0] for e in entries]
            ms, seq = id_parts(ids)
            self._unacked.setdefault(stream, _ReadIds()).add(ids, ms, seq)
            self._position[stream] = _text(ids[-1])
            parts.append((stream, entries, ms))
        if not parts:
            return EventBatch.empty()
        found = decode(parts, room=max(0, MAX_SAMPLES - len(self.samples)))
        self._count("trimmed", found.trimmed)  # pending, then trimmed by MAXLEN
        self._count("malformed", found.malformed)
        self.samples += found.samples
        entries = sum(len(p[1]) for p in parts) - found.trimmed
        if entries and found.lines:
            self._per_entry = max(1.0, found.lines / entries)
        return found.batch

    # -- trouble ------------------------------------------------------------------------

    def _count(self, name: str, n: int) -> None:
        if n:
            self._counts[name] += n

    def _create_groups(self, *, recreate: bool) -> None:
        """The group on every stream (created with the stream if need be), at id 0."""
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
                continue
            if recreate:  # the stream went away: what was read from it cannot be acked
                log.warning("stream %s (group %s) was gone; group recreated at 0",
                            stream, self.group)  # fmt: skip
                self._counts["stream_recreated"] += 1
                self._unacked[stream] = _ReadIds()
                self._pel.pop(stream, None)
                self._position.pop(stream, None)  # a new stream: old ids mean nothing there
                self._after.pop(stream, None)
        self._groups_ready = True

    def _recover(self, action: Any, **kwargs: Any) -> None:
        try:
            action(**kwargs)
        except _UNREACHABLE as exc:
            self._unreachable("recreate", exc)

    def _unreachable(self, what: str, exc: BaseException) -> None:
        self._failures += 1
        self._counts["redis_errors"] += 1
        delay = min(_BACKOFF[1], _BACKOFF[0] * 2 ** (self._failures - 1))
        self._retry_at = time.monotonic() + delay
        log.warning("redis %s on %s failed (%s); retrying in %.1fs", what, self.name,
                    exc, delay)  # fmt: skip


class _ReadIds:
    """The entry ids read from one stream and not yet acknowledged, in reading order
    (pending ones first, then new ones: ascending)."""

    def __init__(self) -> None:
        self.ids: list = []
        self.ms = np.empty(0, np.int64)
        self.seq = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: list, ms: np.ndarray, seq: np.ndarray) -> None:
        self.ids.extend(ids)
        self.ms, self.seq = np.concatenate([self.ms, ms]), np.concatenate([self.seq, seq])

    def count_upto(self, last: tuple[int, int]) -> int:
        return int(((self.ms < last[0]) | ((self.ms == last[0]) & (self.seq <= last[1]))).sum())

    def drop(self, n: int) -> None:
        del self.ids[:n]
        self.ms, self.seq = self.ms[n:], self.seq[n:]


def _raw_reply(response: Any, **options: Any) -> Any:
    return response


def _streams(reply: Any) -> list[tuple[str, list]]:
    """XREADGROUP's raw reply as (stream, entries): RESP2 ``[[stream, entries], ...]``,
    RESP3 ``{stream: entries}``; an entry is ``[id, [field, value, ...]]``, or
    ``[id, None]`` when it was trimmed away while pending."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(_text(s), entries) for s, entries in pairs]


# ----------------------------------------------------------------------------- stats


def stream_stats(client: Any, *, prefix: str, shards: int | list[int],
                 group: str) -> list[dict[str, Any]]:  # fmt: skip
    """Per stream: length, the group's pending entries, lag (None where Redis cannot
    tell), consumers, the last entry's id (None: empty or missing). Length, pending and
    lag count entries: a block of events is one."""
    ids = list(range(shards)) if isinstance(shards, int) else sorted(set(shards))
    pipe = client.pipeline(transaction=False)
    for k in ids:
        key = stream_key(prefix, k)
        pipe.exists(key)
        pipe.xlen(key)
        pipe.xinfo_groups(key)
        pipe.xrevrange(key, count=1)
    replies = pipe.execute(raise_on_error=False)
    out = []
    for n, k in enumerate(ids):
        exists, length, groups, last = replies[4 * n: 4 * n + 4]
        ours = next((g for g in groups if _text(g.get("name")) == group), None) \
            if isinstance(groups, list) else None
        out.append({
            "stream": stream_key(prefix, k), "exists": bool(exists),
            "length": length if isinstance(length, int) else 0,
            "pending": ours and ours.get("pending"), "lag": ours and ours.get("lag"),
            "consumers": ours and ours.get("consumers"),
            "last_delivered_id": ours and _text(ours.get("last-delivered-id")),
            "last_entry_id": _text(last[0][0]) if isinstance(last, list) and last else None,
        })  # fmt: skip
    return out
