"""File replay (CSV, Parquet) and the in-process queue: events converted column by column,
bad rows counted with their line, pacing by event time, resuming by row."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jingxin.errors import InputError
from jingxin.geofence.sources import FileReplay, QueueSource, concat_batches
from jingxin.geofence.types import EVENT_TYPES, EventBatch

T0 = 1_717_200_000_000  # 2024-06-01T00:00:00Z


def drain(source, max_events: int = 1000) -> EventBatch:
    parts = []
    while (batch := source.read(max_events, 0)) is not None:
        parts.append(batch)
    return concat_batches(parts)


def write(tmp_path: Path, text: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- CSV


def test_csv_rows_become_events(tmp_path: Path) -> None:
    # Given numbers in the usual forms, ts as naive local time, with an offset, Z, epoch ms
    path = write(tmp_path, "msisdn,cell,ts,type\n"
                           "13912345678,C000001,2024-06-01T08:00:00,update\n"
                           "+86 139 1234 5679, C000002 ,2024-06-01 08:00:00.250+08:00,CALL\n"
                           "8613912345670,C000003,2024-06-01T00:00:00Z,\n"
                           f"13912345671,ROAM-JP,{T0},sms\n")  # fmt: skip
    # When it is replayed
    source = FileReplay(path)
    batch = drain(source)
    # Then every row is an event, numbers as E.164 digits, times as UTC epoch ms
    assert batch.msisdn.tolist() == [8613912345678, 8613912345679, 8613912345670, 8613912345671]
    assert batch.cell.to_pylist() == ["C000001", "C000002", "C000003", "ROAM-JP"]
    assert batch.ts.tolist() == [T0, T0 + 250, T0, T0]  # naive = Asia/Shanghai (UTC+8)
    assert [EVENT_TYPES[k] for k in batch.kind] == ["update", "call", "update", "sms"]
    assert source.counts()["malformed"] == 0
    assert source.position() == {"file": str(path), "row": 4}


@pytest.mark.parametrize(("line", "reason"), [
    ("1391234,C1,2024-06-01T08:00:00,update", "msisdn '139****' is not a mobile number"),
    ("13912345678,,2024-06-01T08:00:00,update", "no cell"),
    ("13912345678,C1,2024-06-31T08:00:00,update", "ts '2024-06-31T08:00:00' is neither"),
    ("13912345678,C1,2024-06-01T25:00:00,update", "is neither ISO-8601 nor epoch"),
    ("13912345678,C1,yesterday,update", "ts 'yesterday' is neither"),
    ("13912345678,C1,,update", "no ts"),
    ("13912345678,C1,1717200000,update", "looks like epoch seconds"),
    ("13912345678,C1,2024-06-01T08:00:00,teleport", "type 'teleport' is not one of"),
    ("13912345678,C1,2024-06-01T08:00:00", "3 fields, 4 expected"),
    ("13912345678,C1,2024-06-01T08:00:00,update,extra", "5 fields, 4 expected"),
])  # fmt: skip
def test_a_malformed_line_is_counted_with_its_line_and_reason(tmp_path: Path, line: str,
                                                              reason: str) -> None:
    # Given a good line, the bad one (line 3), and another good one
    path = write(tmp_path, "msisdn,cell,ts,type\n"
                           f"13900000001,C1,{T0},update\n{line}\n13900000002,C2,{T0},update\n")
    # When it is replayed
    source = FileReplay(path)
    batch = drain(source)
    # Then the good lines are kept, the bad one counted and shown with file:line
    assert batch.msisdn.tolist() == [8613900000001, 8613900000002]
    assert source.counts()["malformed"] == 1
    assert len(source.samples) == 1 and source.samples[0].startswith(f"{path}:3: ")
    assert reason in source.samples[0]
    assert source.position()["row"] == 3


def test_bad_rows_spread_over_batches_keep_their_line_numbers(tmp_path: Path) -> None:
    # Given 3,000 rows where every 250th is bad in a different way, read in small batches
    lines = ["msisdn,cell,ts,type"]
    bad_lines = []
    for i in range(3000):
        if i % 250 == 7:
            bad_lines.append(i + 2)
            lines.append("13900000000,C1" if i % 500 == 7 else f"13900000000,C1,bad{i},update")
        else:
            lines.append(f"{13900000000 + i},C{i},{T0 + i},update")
    path = write(tmp_path, "\n".join(lines) + "\n")
    source = FileReplay(path, batch_rows=100)
    # When it is replayed 333 events at a time
    batch = drain(source, max_events=333)
    # Then no good row is lost and each bad one is reported at its own line
    assert len(batch) == 3000 - len(bad_lines)
    assert source.counts()["malformed"] == len(bad_lines)
    assert len(source.samples) == 10
    for sample in source.samples:
        line = int(sample.split(":")[1])
        assert line in bad_lines
        kind = "2 fields, 4 expected" if (line - 2) % 500 == 7 else f"ts 'bad{line - 2}'"
        assert kind in sample, sample
    assert source.position()["row"] == 3000


def test_bytes_that_are_not_utf8_cost_their_row_only(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"msisdn,cell,ts,type\n13900000001,C\xe91,1717200000000,update\n"
                     b"13900000002,C2,1717200000000,update\n")
    source = FileReplay(path)
    assert drain(source).cell.to_pylist() == ["C2"]
    assert source.samples == [
        f"{path}:2: not UTF-8 text (a GBK export? iconv -f gbk -t utf-8 converts it)"]


def test_blank_lines_are_skipped_silently_and_type_may_be_left_out(tmp_path: Path) -> None:
    path = write(tmp_path, f"ts,cell,msisdn\n{T0},C1,13900000001\n\n{T0 + 1},C2,13900000002\n")
    source = FileReplay(path)
    batch = drain(source)
    assert batch.kind.tolist() == [0, 0] and batch.ts.tolist() == [T0, T0 + 1]
    assert source.counts()["malformed"] == 0


@pytest.mark.parametrize(("text", "problem"), [
    ("msisdn,ts,type\n13900000001,1717200000000,update\n", "no column 'cell'"),
    ("", "no column 'msisdn'"),
])  # fmt: skip
def test_a_file_without_a_needed_column_is_refused_by_name(tmp_path: Path, text: str,
                                                           problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=problem) as caught:
        FileReplay(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.csv: cannot read"):
        FileReplay(tmp_path / "missing.csv")


def test_resume_by_start_row_goes_on_after_the_rows_consumed(tmp_path: Path) -> None:
    # Given a file with a bad row near the start, read partly
    lines = ["msisdn,cell,ts,type", "bad,C,1,update"]
    lines += [f"{13900000000 + i},C{i},{T0 + i},update" for i in range(99)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    first = FileReplay(path)
    head = first.read(40, 0)
    row = first.position()["row"]
    # When a new replay starts at that row
    second = FileReplay(path, start_row=row)
    tail = drain(second)
    # Then together they give every good event once, and the bad row is not counted twice
    together = np.concatenate([head.msisdn, tail.msisdn])
    assert together.tolist() == [8613900000000 + i for i in range(99)]
    assert row == 41 and second.counts()["malformed"] == 0


# Bad rows of a resume case: data row -> what is wrong ("fields": a CSV row one field short,
# in Parquet a bad type). Row 22 lies right after the stop: the second replay's to count.
BAD_ROWS = {5: "ts", 12: "fields", 22: "fields", 30: "msisdn", 41: "fields", 50: "cell"}


def write_with_bad_rows(tmp_path: Path, kind: str, n: int) -> Path:
    rows = []
    for i in range(n):
        row = [str(13900000000 + i), f"C{i}", str(T0 + i), "update"]
        wrong = BAD_ROWS.get(i)
        if wrong == "fields":
            row = row[:3] if kind == "csv" else row[:3] + ["teleport"]
        elif wrong is not None:
            row[("msisdn", "cell", "ts").index(wrong)] = "bad" if wrong != "cell" else ""
        rows.append(row)
    if kind == "csv":
        return write(tmp_path, "msisdn,cell,ts,type\n" + "".join(",".join(r) + "\n" for r in rows))
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({c: [r[j] for r in rows]
                             for j, c in enumerate(("msisdn", "cell", "ts", "type"))}), path)
    return path


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_resumed_replay_counts_each_bad_row_once(tmp_path: Path, kind: str) -> None:
    # Given 60 rows with bad ones before and after the point where a replay stops, read
    # in chunks bigger than what is handed out (Parquet: 8 rows, so the stop is mid-chunk)
    path = write_with_bad_rows(tmp_path, kind, 60)
    first = FileReplay(path, batch_rows=8)
    parts = []
    while (n := sum(len(p) for p in parts)) < 20:  # good rows 0-21 but 5 and 12
        parts.append(first.read(20 - n, 0))
    head = concat_batches(parts)
    row = first.position()["row"]
    # When a new replay resumes at that position and runs to the end
    second = FileReplay(path, start_row=row, batch_rows=8)
    tail = drain(second)
    # Then each replay counts and shows only the bad rows of its own part, each once
    def lines(source: FileReplay) -> list[int]:
        return [int(s.split(":")[1].removeprefix("row ")) for s in source.samples]

    line = (lambda r: r + 2) if kind == "csv" else (lambda r: r + 1)
    assert row == 22
    assert first.counts()["malformed"] == 2 and lines(first) == [line(5), line(12)]
    assert second.counts()["malformed"] == 4
    assert sorted(lines(second)) == [line(r) for r in (22, 30, 41, 50)]
    assert first.counts()["malformed"] + second.counts()["malformed"] == len(BAD_ROWS)
    together = np.concatenate([head.msisdn, tail.msisdn]).tolist()
    assert together == [8613900000000 + i for i in range(60) if i not in BAD_ROWS]
    assert second.position()["row"] == 60


# ----------------------------------------------------------------------------- Parquet


def test_parquet_with_a_timestamp_column_and_integer_numbers(tmp_path: Path) -> None:
    # Given a Parquet file: numbers as int64, ts a naive timestamp (local) with one null
    path = tmp_path / "events.parquet"
    local = pa.array([datetime(2024, 6, 1, 8), None, datetime(2024, 6, 1, 8, 0, 1)],
                     pa.timestamp("ms"))  # fmt: skip
    pq.write_table(pa.table({"msisdn": pa.array([8613900000001, 8613900000002, 13900000003]),
                             "cell": ["C1", "C2", "C3"], "ts": local,
                             "type": pa.array(["call", "sms", None])}), path)  # fmt: skip
    source = FileReplay(path)
    batch = drain(source)
    assert batch.msisdn.tolist() == [8613900000001, 8613900000003]
    assert batch.ts.tolist() == [T0, T0 + 1000]
    assert batch.kind.tolist() == [EVENT_TYPES.index("call"), 0]
    assert source.samples == [f"{path}:row 2: no ts"]
    assert source.position()["row"] == 3


def test_parquet_with_zoned_timestamps_and_text_ts(tmp_path: Path) -> None:
    zoned = tmp_path / "zoned.parquet"
    pq.write_table(pa.table({"msisdn": ["13900000001"], "cell": ["C1"],
                             "ts": pa.array([T0], pa.timestamp("ms", "UTC"))}), zoned)
    text = tmp_path / "text.parquet"
    pq.write_table(pa.table({"msisdn": ["13900000001", "13900000002"], "cell": ["C1", "C2"],
                             "ts": ["2024-06-01T08:00:00+08:00", str(T0)]}), text)
    assert drain(FileReplay(zoned)).ts.tolist() == [T0]
    assert drain(FileReplay(text)).ts.tolist() == [T0, T0]


def test_parquet_ts_of_an_unusable_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "floats.parquet"
    pq.write_table(pa.table({"msisdn": ["13900000001"], "cell": ["C1"], "ts": [1.5]}), path)
    with pytest.raises(InputError, match="floats.parquet: column 'ts' is double"):
        drain(FileReplay(path))


# ----------------------------------------------------------------------------- pacing


def test_speed_paces_by_event_time(tmp_path: Path) -> None:
    # Given 5 events 10 s apart, replayed 50x faster: 0.2 s of wall time between them
    lines = ["msisdn,cell,ts,type"] + [f"1390000000{i},C{i},{T0 + i * 10_000},update"
                                       for i in range(5)]  # fmt: skip
    source = FileReplay(write(tmp_path, "\n".join(lines) + "\n"), speed=50)
    started = time.monotonic()
    seen = []
    # When read as often as the source allows
    while (batch := source.read(100, 50)) is not None:
        seen += [(time.monotonic() - started, int(t)) for t in batch.ts]
    # Then no event went out before its paced time, nor much after
    assert len(seen) == 5
    for wall, ts in seen:
        due = (ts - T0) / 1000 / 50
        assert due - 0.005 <= wall <= due + 0.4
    assert seen[-1][0] >= 0.79


def test_an_empty_batch_while_the_next_event_is_not_due(tmp_path: Path) -> None:
    path = write(tmp_path, f"msisdn,cell,ts\n13900000001,C1,{T0}\n13900000002,C1,{T0 + 60_000}\n")
    source = FileReplay(path, speed=1)
    assert len(source.read(10, 0)) == 1
    started = time.monotonic()
    assert len(source.read(10, 20)) == 0  # a minute away: waits block_ms, returns nothing
    assert 0.015 <= time.monotonic() - started < 0.5
    assert source.position()["row"] == 1


def test_speed_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="speed"):
        FileReplay(write(tmp_path, "msisdn,cell,ts\n"), speed=0)


# ----------------------------------------------------------------------------- queue


def batch_of(numbers: list[int], received: bool = False) -> EventBatch:
    n = len(numbers)
    return EventBatch(np.array(numbers, np.int64), [f"C{x % 10}" for x in numbers],
                      np.arange(n, dtype=np.int64) + T0, np.zeros(n, np.uint8),
                      np.full(n, 7, np.int64) if received else None)  # fmt: skip


def test_queue_merges_small_batches_and_splits_big_ones() -> None:
    queue = QueueSource()
    queue.put(batch_of([1, 2]))
    queue.put(batch_of([3, 4, 5], received=True))
    queue.put(batch_of([6, 7, 8, 9]))
    first = queue.read(4, 0)
    assert first.msisdn.tolist() == [1, 2, 3, 4]
    assert first.cell.to_pylist() == ["C1", "C2", "C3", "C4"]
    assert first.received_ms[2:].tolist() == [7, 7]  # a put batch without one is stamped
    assert abs(first.received_ms[0] - time.time() * 1000) < 5000
    assert queue.read(100, 0).msisdn.tolist() == [5, 6, 7, 8, 9]
    assert len(queue.read(100, 0)) == 0  # nothing yet
    queue.close()
    assert queue.read(100, 0) is None
    assert queue.position()["events"] == 9
    with pytest.raises(InputError, match="closed"):
        queue.put(batch_of([10]))


def test_queue_read_wakes_when_another_thread_puts() -> None:
    queue = QueueSource()
    timer = threading.Timer(0.05, lambda: queue.put(batch_of([42])))
    timer.start()
    started = time.monotonic()
    batch = queue.read(10, 2000)
    timer.join()
    assert batch.msisdn.tolist() == [42]
    assert time.monotonic() - started < 1.0


def test_queue_returns_what_is_left_after_close() -> None:
    queue = QueueSource()
    queue.put(batch_of([1]))
    queue.close()
    assert queue.read(10, 1000).msisdn.tolist() == [1]
    assert queue.read(10, 1000) is None

