"""Location events over real Redis Streams: sharded publishing in block entries, consumer
groups splitting the shards, pending entries replayed after a crash, acks on commit, a
stream that disappears, leases, malformed entries and lines, one-event entries beside
blocks."""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from jingxin.errors import ConfigError, InputError
from jingxin.geofence.sources import concat_batches
from jingxin.geofence.streams import (
    LeaseLost,
    RedisStreamSource,
    ShardLease,
    connect,
    publish,
    stream_stats,
)
from jingxin.geofence.types import EventBatch, shard_of

pytestmark = pytest.mark.redis

T0 = 1_717_200_000_000
SHARDS = 4


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    c = connect(redis_url)
    yield c
    c.close()


@pytest.fixture
def prefix(client: Any) -> Iterator[str]:
    name = f"jxtest:{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)


def events(n: int, *, subscribers: int = 50, start: int = 0) -> EventBatch:
    """``n`` events over ``subscribers`` numbers; ts increases with the event's index."""
    i = np.arange(start, start + n, dtype=np.int64)
    msisdn = 8613900000000 + i % subscribers
    return EventBatch(msisdn, [f"C{x:06d}" for x in i % 97], T0 + i * 1000,
                      (i % 7).astype(np.uint8))  # fmt: skip


def source(client: Any, prefix: str, shards: list[int] | None = None, consumer: str = "m1",
           start_after: dict | None = None, **options: Any) -> RedisStreamSource:  # fmt: skip
    return RedisStreamSource(client, prefix=prefix, group="g", consumer=consumer,
                             shards=shards if shards is not None else list(range(SHARDS)),
                             start_after=start_after, **options)  # fmt: skip


def read_all(src: RedisStreamSource, max_events: int = 100) -> EventBatch:
    """Read until a read finds no entry (a read of malformed entries only is empty too)."""
    parts, before = [], None
    while len(batch := src.read(max_events, 20)) or src.position() != before:
        parts.append(batch)
        before = src.position()
    return concat_batches(parts)


def keys(batch: EventBatch) -> list[tuple[int, int]]:
    return sorted(zip(batch.msisdn.tolist(), batch.ts.tolist(), strict=True))


def pending(client: Any, prefix: str) -> int:
    return sum(s["pending"] or 0 for s in stream_stats(client, prefix=prefix, shards=SHARDS,
                                                        group="g"))  # fmt: skip


def entry_ms(client: Any, stream: str) -> list[int]:
    return [int(entry_id.split(b"-")[0]) for entry_id, _ in client.xrange(stream)]


def test_published_events_are_read_back_whole(client: Any, prefix: str) -> None:
    # Given 500 events published over 4 streams in blocks of up to 10
    batch = events(500)
    assert publish(client, batch, prefix=prefix, shards=SHARDS, maxlen=10_000, block=10) == 500
    # When a matcher reads every shard
    src = source(client, prefix)
    got = read_all(src)
    # Then it has every event, field for field, stamped with the entry's time
    order = np.lexsort((got.ts, got.msisdn))
    want = np.lexsort((batch.ts, batch.msisdn))
    assert got.msisdn[order].tolist() == batch.msisdn[want].tolist()
    assert got.ts[order].tolist() == batch.ts[want].tolist()
    assert got.kind[order].tolist() == batch.kind[want].tolist()
    assert got.cell.take(order).to_pylist() == [batch.cell[i] for i in want]
    assert abs(int(got.received_ms.min()) - int(client.time()[0]) * 1000) < 60_000
    # And each stream holds its shard's events in entries of 10
    per_shard = np.bincount(shard_of(batch.msisdn, SHARDS), minlength=SHARDS)
    assert per_shard.min() > 50  # hashed evenly enough
    lengths = [s["length"] for s in stream_stats(client, prefix=prefix, shards=SHARDS, group="g")]
    assert lengths == [math.ceil(n / 10) for n in per_shard.tolist()]
    assert src.counts()["malformed"] == 0


def test_each_subscribers_events_stay_in_order(client: Any, prefix: str) -> None:
    # Given three publishes of interleaved events for 30 subscribers, in blocks of 7
    for start in (0, 300, 600):
        publish(client, events(300, subscribers=30, start=start), prefix=prefix, shards=SHARDS,
                maxlen=10_000, block=7)  # fmt: skip
    # When read in small batches
    got = read_all(source(client, prefix), max_events=37)
    # Then each subscriber's events come in the order they were published (ts ascending)
    assert len(got) == 900
    for number in np.unique(got.msisdn):
        ts = got.ts[got.msisdn == number]
        assert (np.diff(ts) > 0).all()


def test_two_matchers_on_disjoint_shards_split_the_load(client: Any, prefix: str) -> None:
    batch = events(400, subscribers=200)
    publish(client, batch, prefix=prefix, shards=SHARDS, maxlen=10_000)
    first = read_all(source(client, prefix, shards=[0, 1], consumer="a"))
    second = read_all(source(client, prefix, shards=[2, 3], consumer="b"))
    # Then together they read everything once, each only its own subscribers
    assert len(first) + len(second) == 400 and len(first) > 100 and len(second) > 100
    assert set(shard_of(first.msisdn, SHARDS).tolist()) <= {0, 1}
    assert set(shard_of(second.msisdn, SHARDS).tolist()) <= {2, 3}
    assert not set(first.msisdn.tolist()) & set(second.msisdn.tolist())


def test_commit_acknowledges_up_to_the_position_only(client: Any, prefix: str) -> None:
    # Given one event per entry (pending counts entries)
    publish(client, events(200), prefix=prefix, shards=SHARDS, maxlen=10_000, block=1)
    src = source(client, prefix)
    src.read(100, 20)
    upto = src.position()
    rest = read_all(src)
    assert pending(client, prefix) == 200
    src.commit(upto)
    assert pending(client, prefix) == len(rest)
    src.commit(src.position())
    assert pending(client, prefix) == 0


def test_a_restarted_matcher_replays_what_its_checkpoint_lacks(client: Any, prefix: str) -> None:
    # Given a matcher that read three rounds of blocks: the first committed, the second in a
    # checkpoint not yet acknowledged, the third read but in no checkpoint, then died
    publish(client, events(120), prefix=prefix, shards=SHARDS, maxlen=10_000, block=5)
    dead = source(client, prefix, block=5)
    first = dead.read(40, 20)
    dead.commit(dead.position())
    second = dead.read(40, 20)
    checkpoint = dead.position()
    third = dead.read(40, 20)
    assert len(first) and len(second) and len(third)
    del dead
    # When it restarts from the checkpoint (same consumer name)
    restarted = source(client, prefix, start_after=checkpoint, block=5)
    replay = restarted.read(1000, 20)
    # Then only the third round comes again, whole blocks in their order; the second is
    # acknowledged, not replayed
    assert keys(replay) == keys(third)
    assert replay.ts.tolist() == third.ts.tolist()
    counts = restarted.counts()
    assert counts["replayed"] == len(third) and counts["checkpointed"] == len(second)
    # And it goes on with new entries, after which nothing is left pending
    rest = read_all(restarted)
    assert len(first) + len(second) + len(third) + len(rest) == 120
    restarted.commit(restarted.position())
    assert pending(client, prefix) == 0


def test_a_deleted_stream_is_recreated_and_reading_goes_on(client: Any, prefix: str) -> None:
    publish(client, events(100), prefix=prefix, shards=SHARDS, maxlen=10_000, block=10)
    src = source(client, prefix)
    assert len(read_all(src)) == 100
    # When one stream disappears and events keep coming
    client.delete(f"{prefix}:1")
    later = events(100, start=100)
    publish(client, later, prefix=prefix, shards=SHARDS, maxlen=10_000)
    got = read_all(src)
    got = concat_batches([got, read_all(src)])
    # Then the group is back on it, counted, and every new event arrives once
    assert src.counts()["stream_recreated"] == 1
    assert sorted(got.ts.tolist()) == sorted(later.ts.tolist())
    src.commit(src.position())
    assert pending(client, prefix) == 0


def test_malformed_entries_are_counted_and_acknowledged(client: Any, prefix: str) -> None:
    # Given good one-event entries mixed with every kind of bad one, written by someone else
    stream = f"{prefix}:0"
    good = {"m": "8613900000001", "c": "C000001", "t": str(T0), "k": "0"}
    bad = [{"m": "13900000001x"}, {**good, "m": "86139"}, {**good, "m": "-8613900000001"},
           {**good, "t": "soon"}, {**good, "t": "-5"}, {**good, "k": "99"}, {**good, "k": ""},
           {**good, "c": ""}, {**good, "c": b"\xff\xfe"}, {"c": "C1", "t": str(T0), "k": "1"},
           {"x": "y"}, {**good, "m": "8" * 30}]  # fmt: skip
    rng = np.random.default_rng(7)
    written = 0
    for i in range(60):
        fields = dict(bad[rng.integers(len(bad))]) if i % 3 == 0 else {**good, "t": str(T0 + i)}
        client.xadd(stream, fields)
        written += i % 3 != 0
    src = source(client, prefix, shards=[0])
    got = read_all(src)
    # Then the good ones are events, the bad ones counted with samples, all acknowledged
    assert len(got) == written
    assert src.counts()["malformed"] == 60 - written
    assert src.samples and src.samples[0].startswith(f"{stream} ")
    src.commit(src.position())
    assert pending(client, prefix) == 0


def test_blocks_keep_order_and_stamp_events_with_their_entrys_time(client: Any,
                                                                   prefix: str) -> None:
    # Given one stream, written by two publishes (a few ms apart) in blocks of 3
    first, second = events(5, subscribers=2), events(5, subscribers=2, start=5)
    publish(client, first, prefix=prefix, shards=1, maxlen=10_000, block=3)
    time.sleep(0.005)
    publish(client, second, prefix=prefix, shards=1, maxlen=10_000, block=3)
    # When read in batches that cut through blocks
    got = read_all(source(client, prefix, shards=[0]), max_events=4)
    # Then the events come exactly in publishing order, across blocks and publishes,
    # each stamped with the time of the entry that carried it (blocks of 3, 2, 3, 2)
    want = concat_batches([first, second])
    assert got.ts.tolist() == want.ts.tolist() and got.msisdn.tolist() == want.msisdn.tolist()
    assert got.cell.to_pylist() == want.cell.to_pylist()
    assert got.received_ms.tolist() == np.repeat(entry_ms(client, f"{prefix}:0"),
                                                 [3, 2, 3, 2]).tolist()  # fmt: skip
    assert entry_ms(client, f"{prefix}:0")[1] < entry_ms(client, f"{prefix}:0")[2]


def test_one_event_entries_and_blocks_mix_in_one_read(client: Any, prefix: str) -> None:
    # Given another producer's one-event entries before, between and after block entries
    stream = f"{prefix}:0"
    one = events(9, subscribers=1)
    as_fields = [{"m": str(m), "c": c, "t": str(t), "k": str(k)} for m, c, t, k
                 in zip(one.msisdn.tolist(), one.cell, one.ts.tolist(), one.kind.tolist(),
                        strict=True)]  # fmt: skip
    client.xadd(stream, as_fields[0])
    publish(client, _part(one, 1, 4), prefix=prefix, shards=1, maxlen=10_000, block=2)
    client.xadd(stream, as_fields[4])
    client.xadd(stream, as_fields[5])
    publish(client, _part(one, 6, 9), prefix=prefix, shards=1, maxlen=10_000)
    # When one read takes them all (a source told to expect one event per entry)
    src = source(client, prefix, shards=[0], block=1)
    got = src.read(1000, 20)
    # Then the subscriber's events are all there, in the order written, nothing malformed
    assert len(client.xrange(stream)) == 6
    assert got.ts.tolist() == one.ts.tolist() and got.kind.tolist() == one.kind.tolist()
    assert got.cell.to_pylist() == one.cell
    assert got.received_ms.tolist() == np.repeat(entry_ms(client, stream),
                                                 [1, 2, 1, 1, 1, 3]).tolist()  # fmt: skip
    assert src.counts()["malformed"] == 0


def _part(batch: EventBatch, start: int, stop: int) -> EventBatch:
    return EventBatch(batch.msisdn[start:stop], batch.cell[start:stop], batch.ts[start:stop],
                      batch.kind[start:stop])  # fmt: skip


def test_a_malformed_line_costs_only_itself(client: Any, prefix: str) -> None:
    # Given a block with good lines around bad ones, and a block with bad lines only
    stream = f"{prefix}:0"
    good = [f"86139000000{i:02d},C{i},{T0 + i},{i % 7}" for i in range(4)]
    lines = [good[0], "8613900000001,C1,soon,0", "8613900000001,C1", good[1], "",
             f"8613900000001,C1,{T0},9", f"139,C1,{T0},0", f"8613900000001, ,{T0},0", good[2],
             f"8613900000001,C1,{T0},0,extra", good[3]]  # fmt: skip
    first = client.xadd(stream, {"b": "\n".join(lines) + "\n"}).decode()
    second = client.xadd(stream, {"b": "nonsense\n\xff\n"}).decode()
    # When both are read at once (one buffer: line numbers must be found per block)
    src = source(client, prefix, shards=[0], block=1)
    got = src.read(100, 20)
    # Then the good lines are events in order, each bad line counted (the all-bad block's
    # too), the first few shown by stream, entry and line
    assert got.ts.tolist() == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert got.msisdn.tolist() == [8613900000000 + i for i in range(4)]
    assert src.counts()["malformed"] == 7 + 2
    assert f"{stream} {first}: line 2: ts missing or not positive epoch ms" in src.samples
    assert f"{stream} {first}: line 3: 2 fields, not 4" in src.samples
    assert f"{stream} {first}: line 6: kind missing or no event type" in src.samples
    assert f"{stream} {first}: line 7: msisdn missing or no mobile number" in src.samples
    assert f"{stream} {first}: line 8: cell missing or empty" in src.samples
    assert f"{stream} {second}: line 1: 1 fields, not 4" in src.samples
    # And both entries are acknowledged on commit
    src.commit(src.position())
    assert pending(client, prefix) == 0


def test_a_carriage_return_inside_a_line_keeps_the_blocks_apart(client: Any,
                                                                 prefix: str) -> None:  # fmt: skip
    # Given a foreign block whose cell holds a "\r" (a line end to the parser) between
    # two good blocks
    stream = f"{prefix}:0"
    good = [f"86139000000{i:02d},C{i},{T0 + i},0\n" for i in range(4)]
    ids = [client.xadd(stream, {"b": good[0]}),
           client.xadd(stream, {"b": f"8613900000009,C\r9,{T0},0\n" + good[1]}),
           client.xadd(stream, {"b": good[2] + good[3]})]  # fmt: skip
    # When they are read at once
    src = source(client, prefix, shards=[0], block=1)
    got = src.read(100, 20)
    # Then every good line still comes with its own entry's time, the broken one counted
    ms = [int(i.split(b"-")[0]) for i in ids]
    assert got.ts.tolist() == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert got.received_ms.tolist() == [ms[0], ms[1], ms[2], ms[2]]
    assert src.counts()["malformed"] >= 1
    assert f"{stream} {ids[1].decode()}: a line break inside a line" in src.samples


def test_a_cell_a_line_cannot_carry_refuses_the_batch(client: Any, prefix: str) -> None:
    batch = events(20)
    for cell in ("C1,C2", "C1\nC2", "C1\rC2"):
        cells = list(batch.cell)
        cells[13] = cell
        bad = EventBatch(batch.msisdn, cells, batch.ts, batch.kind)
        with pytest.raises(InputError, match=re.escape(f"cell: {cell!r} (event 13) holds a")):
            publish(client, bad, prefix=prefix, shards=SHARDS, maxlen=10_000)
    # And nothing was written: the check comes before the first entry
    assert not list(client.scan_iter(match=f"{prefix}:*"))


def test_reads_ask_for_about_max_events_whatever_the_entry_size(client: Any,
                                                                prefix: str) -> None:  # fmt: skip
    # Given blocks of 50, read by a source that expects blocks of 500
    publish(client, events(4000, subscribers=400), prefix=prefix, shards=SHARDS,
            maxlen=10_000, block=50)  # fmt: skip
    src = source(client, prefix)
    # Then the first read takes one entry per stream, the next ones about max_events
    assert 4 * 25 <= len(src.read(400, 20)) <= 4 * 50
    sizes = [len(src.read(400, 20)) for _ in range(5)]
    assert all(300 <= n <= 400 + 4 * 50 for n in sizes), sizes


def test_blocks_trimmed_while_pending_are_counted_not_replayed(client: Any,
                                                               prefix: str) -> None:  # fmt: skip
    # Given a matcher that read blocks and died before any checkpoint, and the stream
    # trimmed meanwhile
    publish(client, events(60), prefix=prefix, shards=1, maxlen=10_000, block=20)
    assert len(read_all(source(client, prefix, shards=[0]))) == 60
    client.xtrim(f"{prefix}:0", maxlen=0)
    # When it restarts: the pending entries come back without fields
    restarted = source(client, prefix, shards=[0])
    assert len(read_all(restarted)) == 0
    # Then they are counted trimmed and acknowledged
    assert restarted.counts()["trimmed"] == 3 and restarted.counts()["malformed"] == 0
    restarted.commit(restarted.position())
    assert stream_stats(client, prefix=prefix, shards=1, group="g")[0]["pending"] == 0


def test_maxlen_counts_events(client: Any, prefix: str) -> None:
    # Given 2,000 events in blocks of 10 on one stream, about 100 kept
    for start in range(0, 2000, 200):
        publish(client, events(200, start=start), prefix=prefix, shards=1, maxlen=100, block=10)
    # Then the stream was trimmed (MAXLEN ~ trims whole nodes of 100 entries: not exactly)
    assert 10 <= client.xlen(f"{prefix}:0") <= 110


def test_an_unreachable_redis_gives_empty_batches_not_a_crash() -> None:
    src = RedisStreamSource(connect("redis://127.0.0.1:1/0"), prefix="jxtest:none", group="g",
                            consumer="m", shards=[0])  # fmt: skip
    assert len(src.read(100, 10)) == 0
    assert len(src.read(100, 10)) == 0  # backing off meanwhile
    assert src.counts()["redis_errors"] >= 1


def test_leases_are_all_or_none_and_lost_leases_stop_renewal(client: Any, prefix: str) -> None:
    a = ShardLease(client, prefix=prefix, owner="matcher-a", ttl_ms=10_000)
    b = ShardLease(client, prefix=prefix, owner="matcher-b", ttl_ms=10_000)
    assert a.acquire([0, 1]) == [0, 1]
    # When another owner wants an overlapping set, it gets none of it
    with pytest.raises(InputError, match="shard 1: leased by 'matcher-a'"):
        b.acquire([1, 2])
    assert client.get(f"{prefix}:lease:2") is None
    assert b.acquire([2, 3]) == [2, 3]
    a.renew()
    assert 9_000 < client.pttl(f"{prefix}:lease:0") <= 10_000
    # When a's lease on shard 1 goes to b (expired, taken over), a's renewal says so
    client.set(f"{prefix}:lease:1", "matcher-b", px=10_000)
    with pytest.raises(LeaseLost, match=r"shards \[1\]"):
        a.renew()
    a.release()  # gives back shard 0 only
    assert client.get(f"{prefix}:lease:0") is None
    assert client.get(f"{prefix}:lease:1") == b"matcher-b"


def test_publish_and_streams_through_the_cli(tmp_path, monkeypatch, redis_url: str,
                                             prefix: str) -> None:  # fmt: skip
    from jingxin.cli import app

    monkeypatch.setenv("JINGXIN_CONFIG", os.devnull)
    monkeypatch.setenv("JINGXIN_GEOFENCE__STREAM_PREFIX", prefix)
    path = tmp_path / "events.csv"
    path.write_text("msisdn,cell,ts,type\n13900000001,C1,2024-06-01T08:00:00,update\n"
                    "oops,C2,2024-06-01T08:00:00,update\n13900000002,C3,1717200000000,call\n",
                    encoding="utf-8")  # fmt: skip
    runner = CliRunner()
    out = runner.invoke(app, ["fence", "publish", str(path), "--streams", "2",
                              "--redis", redis_url])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "written 2 events to 2 streams" in out.output
    assert "malformed rows: 1" in out.output and f"{path}:3:" in out.output
    shown = runner.invoke(app, ["fence", "streams", "--json", "--streams", "2",
                                "--redis", redis_url])  # fmt: skip
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.output)["streams"]
    shards = shard_of(np.array([8613900000001, 8613900000002]), 2).tolist()
    assert [r["length"] for r in rows] == [int(0 in shards), int(1 in shards)]  # one block each
    # Without a Redis URL anywhere, one line says what to set
    missing = runner.invoke(app, ["fence", "streams"], env={"JINGXIN_REDIS__URL": ""})
    assert isinstance(missing.exception, ConfigError)
    assert "set [redis] url or pass --redis" in str(missing.exception)
