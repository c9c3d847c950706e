"""Clicks on short links: who is a bot, the keyed client hash, the token directory and its
cache, the batching recorder (flush, retry, bound, stop) and the click summary."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from jingxin.analytics.clicks import (
    ClickRecorder,
    ClickRow,
    LinkDirectory,
    clean_agent,
    click_summary,
    hash_client,
    is_bot,
    record_clicks,
)
from jingxin.config import AnalyticsSettings
from jingxin.data.store import open_store
from jingxin.data.store.models import LinkClick, Message
from jingxin.errors import StoreError

PATTERNS = AnalyticsSettings().bot_agents
NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(("method", "agent", "bot"), [
    ("HEAD", None, True),  # a HEAD never comes from a person's browser
    ("HEAD", "Mozilla/5.0 (iPhone)", True),
    ("GET", None, False),  # some phones' browsers send no agent: a person
    ("GET", "", False),
    ("GET", "Mozilla/5.0 (Linux; Android 14) Chrome/124.0 Mobile", False),
    ("GET", "TelegramBot (like TwitterBot)", True),
    ("GET", "facebookexternalhit/1.1", True),
    ("GET", "Mozilla/5.0 (compatible; Googlebot/2.1)", True),
    ("GET", "CURL/8.5.0", True),  # case does not matter
    ("GET", "WhatsApp/2.23.20.0", True),
])  # fmt: skip
def test_is_bot(method, agent, bot):
    assert is_bot(method, agent, PATTERNS) is bot


def test_is_bot_without_patterns_only_head():
    assert is_bot("GET", "Googlebot", []) is False
    assert is_bot("HEAD", "Mozilla/5.0", []) is True


def test_clean_agent_cuts_and_blanks_control_characters():
    assert clean_agent(None) is None and clean_agent("") is None
    assert clean_agent("a\x00b\nc") == "a b c"  # PostgreSQL refuses NUL in text
    assert len(clean_agent("x" * 500)) == 200


def test_hash_client_is_keyed_and_keeps_no_address():
    first = hash_client("203.0.113.7", "secret-a")
    assert first == hash_client("203.0.113.7", "secret-a")
    assert first != hash_client("203.0.113.7", "secret-b")
    assert first != hash_client("203.0.113.8", "secret-a")
    assert len(first) == 32 and "203" not in first
    assert hash_client(None, "secret-a") is None


def row(i: int = 0, *, bot: bool = False, at: datetime = NOW) -> ClickRow:
    return ClickRow(token=f"Tok{i:07d}", message_id=i, at=at, bot=bot)


# -- the recorder --------------------------------------------------------------------------


class FlakyWrite:
    """A write that fails its first ``failures`` calls (the store away), then writes."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[list[ClickRow]] = []
        self.calls = 0
        self.called = threading.Event()

    def __call__(self, rows):
        self.calls += 1
        self.called.set()
        if self.calls <= self.failures:
            raise StoreError("the store transaction failed: connection refused")
        self.batches.append(list(rows))
        return len(rows)


def test_flush_writes_everything_pending_in_one_call():
    write = FlakyWrite()
    recorder = ClickRecorder(write, flush_seconds=60)
    for i in range(5):
        assert recorder.add(row(i))
    assert recorder.flush() == 5
    assert write.batches == [[row(i) for i in range(5)]]
    assert recorder.pending == 0 and recorder.written == 5
    assert recorder.flush() == 0 and write.calls == 1  # nothing pending: no transaction


def test_a_failed_flush_keeps_the_rows_first_in_line():
    # Given a write that fails once
    write = FlakyWrite(failures=1)
    recorder = ClickRecorder(write, flush_seconds=60)
    recorder.add(row(1))
    recorder.add(row(2))
    # When the flush fails, then the rows are still pending
    with pytest.raises(StoreError):
        recorder.flush()
    assert recorder.pending == 2
    # and clicks arriving meanwhile queue behind them
    recorder.add(row(3))
    assert recorder.flush() == 3
    assert write.batches == [[row(1), row(2), row(3)]]


def test_the_thread_retries_a_failed_write_and_logs_it(caplog):
    write = FlakyWrite(failures=2)
    recorder = ClickRecorder(write, flush_seconds=0.005, max_backoff=0.02)
    recorder.add(row(1))
    with caplog.at_level(logging.WARNING, logger="jingxin.analytics.clicks"):
        recorder.start()
        deadline = time.monotonic() + 2
        while recorder.written < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        recorder.stop()
    assert write.batches == [[row(1)]] and recorder.failures == 2
    assert "writing 1 clicks failed, kept for the next try" in caplog.text


def test_stop_writes_what_is_pending():
    write = FlakyWrite()
    recorder = ClickRecorder(write, flush_seconds=60)  # the thread would never get to it
    recorder.start()
    recorder.add(row(1))
    recorder.stop()
    assert write.batches == [[row(1)]]


def test_stop_gives_up_after_its_attempts_and_says_what_is_lost(caplog):
    write = FlakyWrite(failures=99)
    recorder = ClickRecorder(write, flush_seconds=0.001)
    recorder.add(row(1))
    with caplog.at_level(logging.ERROR, logger="jingxin.analytics.clicks"):
        recorder.stop(attempts=2)
    assert write.calls == 2
    assert "1 clicks could not be written and are lost" in caplog.text


def test_memory_is_bounded_while_the_store_is_away(caplog):
    write = FlakyWrite(failures=1)
    recorder = ClickRecorder(write, flush_seconds=0.001, max_pending=3)  # no thread: no flush
    assert [recorder.add(row(i)) for i in range(5)] == [True, True, True, False, False]
    assert recorder.dropped == 2 and recorder.pending == 3
    with caplog.at_level(logging.WARNING, logger="jingxin.analytics.clicks"):
        recorder.stop(attempts=2)
    assert "2 clicks dropped" in caplog.text
    assert write.batches == [[row(0), row(1), row(2)]]


# -- with a store --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    path = tmp_path_factory.mktemp("clicks") / "template.db"
    open_store(f"sqlite:///{path}", upgrade=True).dispose()
    return path


@pytest.fixture
def store(migrated, tmp_path):
    shutil.copy(migrated, tmp_path / "jx.db")
    opened = open_store(f"sqlite:///{tmp_path / 'jx.db'}")
    yield opened
    opened.dispose()


def add_messages(store, count: int) -> list[int]:
    with store.transaction() as session:
        messages = [Message(tenant_id="operator", msisdn=f"+86139{i:08d}", category="marketing",
                            lane=2, text="offer", idempotency_key=f"key:{i}",
                            link_token=f"Tok{i:07d}", link_url=f"https://shop.example.cn/{i}",
                            created_at=NOW, scheduled_at=NOW)
                    for i in range(count)]  # fmt: skip
        session.add_all(messages)
        session.flush()
        return [m.id for m in messages]


def test_record_clicks_and_the_summary(store):
    ids = add_messages(store, 3)
    rows = [
        ClickRow(token="Tok0000000", message_id=ids[0], at=NOW + timedelta(minutes=5), bot=False,
                 agent="Mozilla/5.0", client=hash_client("203.0.113.7", "s")),
        ClickRow(token="Tok0000000", message_id=ids[0], at=NOW + timedelta(minutes=9), bot=False),
        ClickRow(token="Tok0000000", message_id=ids[0], at=NOW + timedelta(minutes=1), bot=True,
                 method="HEAD"),
        ClickRow(token="Tok0000001", message_id=ids[1], at=NOW + timedelta(minutes=7), bot=False),
        ClickRow(token="Tok0000002", message_id=ids[2], at=NOW, bot=True),
    ]  # fmt: skip
    assert record_clicks(store, rows) == 5
    assert record_clicks(store, []) == 0
    with store.sessions() as session:
        assert session.query(LinkClick).count() == 5
    assert click_summary(store) == {"unique_clickers": 2, "clicks": 3, "bot_requests": 2,
                                    "first_click_at": NOW + timedelta(minutes=5)}
    # Only some messages: the bot's earlier HEAD is no first click.
    assert click_summary(store, [ids[0], ids[2]]) == {
        "unique_clickers": 1, "clicks": 2, "bot_requests": 2,
        "first_click_at": NOW + timedelta(minutes=5)}
    assert click_summary(store, []) == {"unique_clickers": 0, "clicks": 0, "bot_requests": 0,
                                        "first_click_at": None}


def test_the_directory_finds_tokens_and_caches_them(store):
    ids = add_messages(store, 3)
    directory = LinkDirectory(store, size=2)
    assert directory.cached("Tok0000000") is None
    found = directory.load(["Tok0000000", "Tok0000001", "Unknown000"])
    assert set(found) == {"Tok0000000", "Tok0000001"}  # unknown tokens are not cached
    target = directory.cached("Tok0000000")
    assert (target.message_id, target.url, target.due_at) == (
        ids[0], "https://shop.example.cn/0", NOW)
    # A token never changes: the cache answers without the store.
    with store.transaction() as session:
        session.query(Message).filter_by(link_token="Tok0000000").update({"link_url": "x"})
    assert directory.lookup("Tok0000000").url == "https://shop.example.cn/0"
    # Least recently used goes first: Tok0000001 (Tok0000000 was just used).
    assert directory.lookup("Tok0000002").message_id == ids[2]
    assert len(directory) == 2 and directory.cached("Tok0000001") is None
    assert directory.lookup("Unknown000") is None


@pytest.mark.postgres
def test_clicks_on_postgresql(pg_url):
    # The same writes, look-ups and sums on PostgreSQL (booleans grouped, IN expanded).
    store = open_store(pg_url, upgrade=True)
    try:
        ids = add_messages(store, 2)
        assert LinkDirectory(store).lookup("Tok0000001").message_id == ids[1]
        recorder = ClickRecorder.to_store(store, flush_seconds=60)
        recorder.add(ClickRow(token="Tok0000001", message_id=ids[1], at=NOW, bot=False,
                              agent=clean_agent("Mozilla\x00/5.0")))  # fmt: skip
        recorder.add(ClickRow(token="Tok0000001", message_id=ids[1], at=NOW, bot=True,
                              method="HEAD"))  # fmt: skip
        recorder.stop()
        assert click_summary(store, ids) == {"unique_clickers": 1, "clicks": 1,
                                             "bot_requests": 1, "first_click_at": NOW}
    finally:
        store.dispose()
