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

Entry fields: ``m`` msisdn digits, ``c`` cell id, ``t`` epoch ms, ``k`` type index.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jingxin.errors import InputError
from jingxin.geofence.leases import LeaseLost, ShardLease
from jingxin.geofence.sources import MAX_SAMPLES, cell_array, concat_batches
from jingxin.geofence.types import EVENT_TYPES, EventBatch, shard_of

# LeaseLost and ShardLease live in :mod:`jingxin.geofence.leases`; imported from here too.
__all__ = ["MSISDN_RANGE", "PIPELINE_CHUNK", "LeaseLost", "RedisStreamSource", "ShardLease",
           "connect", "publish", "stream_key", "stream_stats"]  # fmt: skip

log = logging.getLogger(__name__)

PIPELINE_CHUNK = 5000  # XADDs / XACK ids per round trip
MSISDN_RANGE = (8613000000000, 8619999999999)  # 86 + a mobile number 1[3-9]xxxxxxxxx
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


# The same XADD (MAXLEN ~) per event, run by Redis for a chunk of one shard's events:
# redis-py packs each pipelined command in Python, which caps single XADDs at ~35k
# entries/s - below the 50k/s the end-to-end goal replays; this runs at ~120k/s.
_XADD_MANY = """
local key, maxlen = KEYS[1], ARGV[1]
for i = 2, #ARGV, 4 do
  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*',
             'm', ARGV[i], 'c', ARGV[i + 1], 't', ARGV[i + 2], 'k', ARGV[i + 3])
end
return (#ARGV - 1) / 4
"""


def publish(client: Any, batch: EventBatch, *, prefix: str, shards: int, maxlen: int) -> int:
    """Append ``batch`` to the streams (``<prefix>:<shard>``, shard by number), each
    subscriber's events in batch order, trimmed to about ``maxlen`` entries each; the
    number of entries written. Redis errors are raised as they come (RedisError)."""
    if not len(batch):
        return 0
    shard = shard_of(batch.msisdn, shards)
    order = np.argsort(shard, kind="stable")  # stable: batch order kept within a shard
    bounds = np.searchsorted(shard[order], np.arange(shards + 1)).tolist()
    m, t, k = batch.msisdn[order].tolist(), batch.ts[order].tolist(), batch.kind[order].tolist()
    c = cell_array(batch.cell).take(pa.array(order)).to_pylist()
    xadd_many = client.register_script(_XADD_MANY)
    written, pipe, queued = 0, client.pipeline(transaction=False), 0
    for k_shard in range(shards):
        for start in range(bounds[k_shard], bounds[k_shard + 1], PIPELINE_CHUNK):
            stop = min(bounds[k_shard + 1], start + PIPELINE_CHUNK)
            args: list = [maxlen]
            for i in range(start, stop):
                args += (m[i], c[i], t[i], k[i])
            xadd_many(keys=[stream_key(prefix, k_shard)], args=args, client=pipe)
            queued += stop - start
            if queued >= 4 * PIPELINE_CHUNK:
                written += sum(int(n) for n in pipe.execute())
                pipe, queued = client.pipeline(transaction=False), 0
    if queued:
        written += sum(int(n) for n in pipe.execute())
    return written


# ----------------------------------------------------------------------------- reading


class RedisStreamSource:
    """The events of ``shards`` read in consumer group ``group`` as ``consumer``."""

    def __init__(self, client: Any, *, prefix: str, group: str, consumer: str,
                 shards: list[int], start_after: dict[str, str] | None = None) -> None:  # fmt: skip
        if not shards:
            raise InputError("shards: a stream source needs at least one shard")
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
        per_stream = max(1, max_events // len(self.streams))  # COUNT applies per stream
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
        stale: dict[str, list[str]] = {}
        for stream, entries in got.items():
            if stream not in self._pel or not entries:
                continue
            self._pel[stream] = _text(entries[-1][0])
            after = self._after.get(stream, (-1, -1))
            keep = [e for e in entries if _id(e[0]) > after]
            if len(keep) < len(entries):
                stale[stream] = [_text(e[0]) for e in entries if _id(e[0]) <= after]
            fresh.append((stream, keep))
        if stale:  # the checkpoint holds these already: acknowledge, do not replay
            pipe = self.client.pipeline(transaction=False)
            for stream, ids in stale.items():
                pipe.xack(stream, self.group, *ids)
                self._counts["checkpointed"] += len(ids)
            pipe.execute()
        batch = self._decode(fresh)
        self._count("replayed", len(batch))
        return batch

    def _decode(self, reply: Any) -> EventBatch:
        """Entries as one batch, column by column; malformed ones (and ones trimmed away
        while pending) are counted and acknowledged with the rest."""
        parts = []
        for stream, entries in _streams(reply):
            if not entries:
                continue
            ids = [e[0] for e in entries]
            self._unacked.setdefault(stream, _ReadIds()).add(ids)
            self._position[stream] = _text(ids[-1])
            parts.append(self._columns(stream, ids, [e[1] or {} for e in entries]))
        return concat_batches(parts)

    def _columns(self, stream: str, ids: list, fields: list[dict]) -> EventBatch:
        key = (lambda f: f.encode()) if isinstance(ids[0], bytes) else (lambda f: f)
        m, c, t, k = ([f.get(key(name)) for f in fields] for name in ("m", "c", "t", "k"))
        trimmed = np.fromiter((not f for f in fields), bool, len(fields))
        msisdn, bad = _integers(m)
        ts, bad_t = _integers(t)
        kind, bad_k = _integers(k)
        cells, bad_c = _cells(c)
        bad |= bad_t | bad_k | bad_c | (msisdn < MSISDN_RANGE[0]) | (msisdn > MSISDN_RANGE[1])
        bad |= (ts <= 0) | (kind < 0) | (kind >= len(EVENT_TYPES))
        self._count("trimmed", int(trimmed.sum()))  # pending, then trimmed by MAXLEN
        wrong = np.flatnonzero(bad & ~trimmed)
        self._count("malformed", len(wrong))
        for i in wrong[: max(0, MAX_SAMPLES - len(self.samples))]:
            self.samples.append(f"{stream} {_text(ids[i])}: fields m, c, t, k missing or out "
                                "of range")  # fmt: skip
        received = _id_ms(ids)
        if bad.any():
            good = np.flatnonzero(~bad)
            return EventBatch(msisdn[good], cells.take(pa.array(good)), ts[good],
                              kind[good].astype(np.uint8), received[good])  # fmt: skip
        return EventBatch(msisdn, cells, ts, kind.astype(np.uint8), received)

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

    def add(self, ids: list) -> None:
        ms, seq = _id_parts(ids)
        self.ids.extend(ids)
        self.ms, self.seq = np.concatenate([self.ms, ms]), np.concatenate([self.seq, seq])

    def count_upto(self, last: tuple[int, int]) -> int:
        return int(((self.ms < last[0]) | ((self.ms == last[0]) & (self.seq <= last[1]))).sum())

    def drop(self, n: int) -> None:
        del self.ids[:n]
        self.ms, self.seq = self.ms[n:], self.seq[n:]


def _strings(values: list) -> pa.Array:
    """Redis values (bytes, str or None) as an Arrow string array; undecodable -> null."""
    first = next((v for v in values if v is not None), None)
    kind = pa.binary() if isinstance(first, bytes) else pa.string()
    try:
        return pc.cast(pa.array(values, kind), pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # rare: find the bad values one by one
        return pa.array([_decoded(v) for v in values], pa.string())


def _decoded(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    try:
        return value.decode() if isinstance(value, bytes) else None
    except UnicodeDecodeError:
        return None


def _integers(values: list) -> tuple[np.ndarray, np.ndarray]:
    """Decimal integers, vectorised; missing or not a number -> bad (value -1)."""
    text = _strings(values)
    ok = pc.fill_null(pc.match_substring_regex(text, r"^-?\d{1,18}$"), False)
    out = pc.cast(pc.if_else(ok, text, "-1"), pa.int64()).to_numpy(zero_copy_only=False)
    return out, ~ok.to_numpy(zero_copy_only=False)


def _cells(values: list) -> tuple[pa.Array, np.ndarray]:
    """Cell ids as strings; empty, missing or undecodable ones marked bad."""
    cells = pc.fill_null(pc.utf8_trim_whitespace(_strings(values)), "")
    return cells, pc.equal(pc.utf8_length(cells), 0).to_numpy(zero_copy_only=False)


def _id_parts(ids: list) -> tuple[np.ndarray, np.ndarray]:
    parts = pc.split_pattern(_strings(ids), "-", max_splits=1)
    flat = pc.cast(parts.flatten(), pa.int64()).to_numpy(zero_copy_only=False)
    return flat[0::2], flat[1::2]  # Redis ids are always "<ms>-<seq>"


def _id_ms(ids: list) -> np.ndarray:
    return _id_parts(ids)[0]


def _streams(reply: Any) -> list[tuple[str, list]]:
    """XREADGROUP's reply as (stream, entries), RESP2 (a list) or RESP3 (a dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3: some redis-py versions wrap the entries in a list
        return [(_text(s), e[0] if e and isinstance(e[0], list) else e) for s, e in reply.items()]
    return [(_text(s), entries) for s, entries in reply]


# ----------------------------------------------------------------------------- stats


def stream_stats(client: Any, *, prefix: str, shards: int | list[int],
                 group: str) -> list[dict[str, Any]]:  # fmt: skip
    """Per stream: length, the group's pending entries, lag (None where Redis cannot
    tell), consumers, the last entry's id (None: empty or missing)."""
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
