"""The MO store's bulk path on SQLite and PostgreSQL: parts go in by one bulk insert that
answers the new rows' ids (COPY on PostgreSQL), a redelivered PDU is stored once (by SMSC
id, by fingerprint in the same window bucket and across a bucket boundary, twice in one
flush), while the subscriber's repeat of an acknowledged one is stored again; long MO are
reassembled from parts of several flushes, a group waiting for a part expires only when
asked, and a message racing another worker's is linked to the first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from sqlalchemy import event, func, select

from jingxin.channels.smpp import short_message
from jingxin.channels.smpp.concat import concat_info
from jingxin.data.store import bulk, open_store
from jingxin.data.store.models import MoMessage, MoPartRow, MoUnacked
from jingxin.dispatch.mo_inbox import InboxRules, release, store_parts
from jingxin.domain.sms import MoPart

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
RULES = InboxRules(part_timeout=timedelta(seconds=60), duplicate_window=timedelta(seconds=600))
LONG = "您好，我想咨询一下本月流量套餐的变更事宜，" * 7  # UCS-2, 3 parts


def parts_of(text: str, *, source: str, ref: int = 7, at: datetime = T0, smsc_id: str | None = None):
    out = []
    for i, part in enumerate(short_message.parts(text, ref=ref)):
        info, data = concat_info(part.esm_class, part.short_message, part.tlvs)
        out.append(MoPart(
            protocol="smpp", source=source, destination="10690001", coding=part.data_coding,
            payload=data, received_at=at + timedelta(milliseconds=i), ref=info.ref if info else None,
            total=info.total if info else None, seq=info.seq if info else None,
            smsc_id=f"{smsc_id}-{i}" if smsc_id else None,
        ))  # fmt: skip
    return out


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def put(store, parts, *, now=T0 + timedelta(seconds=1), expire=False, acks=(), prune=False):
    with store.engine.begin() as conn:
        return store_parts(conn, items=[("sim", p) for p in parts], now=now, rules=RULES,
                           expire=expire, acks=[(at, "sim", part) for at, part in acks],
                           prune=prune)  # fmt: skip


def unacked(store) -> int:
    with store.sessions() as s:
        return s.execute(select(func.count()).select_from(MoUnacked)).scalar_one()


def stored(store) -> tuple[int, list[tuple]]:
    with store.sessions() as s:
        parts = s.execute(select(func.count()).select_from(MoPartRow).where(MoPartRow.mo_id.is_not(None))).scalar_one()
        rows = s.execute(select(MoMessage.msisdn, MoMessage.text, MoMessage.parts, MoMessage.complete)
                         .order_by(MoMessage.id)).all()  # fmt: skip
    return parts, [tuple(r) for r in rows]


def test_a_flush_of_short_and_long_mo_is_stored_and_reassembled_across_flushes(store) -> None:
    # Given 50 short MO and a long one whose first two parts come in the same flush
    shorts = [p for i in range(50) for p in parts_of(f"TD {i}", source=f"86137{i:08d}")]
    long_ = parts_of(LONG, source="8613900000001")
    first = put(store, [*shorts[:25], long_[0], *shorts[25:], long_[1]])
    # Then every short one is a message at once; the long one waits for its last part
    assert (first.stored, len(first.assembled)) == (52, 50)
    second = put(store, [long_[2]])
    # When it comes, the long one is whole, every part linked to its message
    assert [a.complete for a in second.assembled] == [True]
    linked, rows = stored(store)
    assert linked == 53 and len(rows) == 51
    assert rows[-1] == ("+8613900000001", LONG, 3, True)
    assert rows[0] == ("+8613700000000", "TD 0", 1, True)


def test_redelivered_pdus_are_stored_once(store) -> None:
    # Given short MO with an SMSC id and without, stored once
    with_id = parts_of("CX", source="8613700000001", smsc_id="m1")
    plain = parts_of("TD", source="8613700000002", at=T0 + timedelta(seconds=599))
    put(store, [*with_id, *plain])
    # When each comes again - the plain one in the next window bucket (T0 + 601 s) but
    # within the duplicate window of the first copy - and one twice in a single flush
    again = parts_of("TD", source="8613700000002", at=T0 + timedelta(seconds=601))
    twice = parts_of("hello", source="8613700000003")
    tally = put(store, [*with_id, *again, *twice, *twice], now=T0 + timedelta(seconds=602))
    # Then only the new one is stored, and once
    assert (tally.stored, tally.duplicates) == (1, 3)
    assert [text for _, text, _, _ in stored(store)[1]] == ["CX", "TD", "hello"]


def test_a_repeat_of_an_acknowledged_pdu_is_new_and_of_an_unacknowledged_one_a_redelivery(store) -> None:
    # Given "Y" from one subscriber, stored; its deliver_sm_resp is never written (the link
    # dropped), so the SMSC delivers it again 40 s later
    [first] = parts_of("Y", source="8613700000005")
    put(store, [first])
    [again] = parts_of("Y", source="8613700000005", at=T0 + timedelta(seconds=40))
    redelivered = put(store, [again], now=T0 + timedelta(seconds=41))
    assert (redelivered.stored, redelivered.duplicates) == (0, 1)
    # When that one is acknowledged, and the subscriber sends "Y" again (a second order),
    # in the same window bucket, and once more after that one was acknowledged
    [second] = parts_of("Y", source="8613700000005", at=T0 + timedelta(seconds=90))
    tally = put(store, [second], now=T0 + timedelta(seconds=91), acks=[(0, again)])
    [third] = parts_of("Y", source="8613700000005", at=T0 + timedelta(seconds=95))
    later = put(store, [third], now=T0 + timedelta(seconds=96), acks=[(0, second)])
    # Then both repeats are messages of their own; the one unacknowledged part is the last
    assert (tally.stored, later.stored) == (1, 1)
    assert [text for _, text, _, _ in stored(store)[1]] == ["Y", "Y", "Y"]
    assert unacked(store) == 1


def test_within_one_flush_only_a_repeat_after_the_acknowledgement_is_new(store) -> None:
    # Given "YE" stored, then one flush holding: the same PDU (the SMSC resending it before
    # it heard the resp), the acknowledgement of the first, and the subscriber's "YE" again
    [first] = parts_of("YE", source="8613700000006")
    put(store, [first])
    [resent, repeat] = [parts_of("YE", source="8613700000006", at=T0 + timedelta(seconds=s))[0]
                        for s in (30, 31)]  # fmt: skip
    tally = put(store, [resent, repeat], now=T0 + timedelta(seconds=32), acks=[(1, first)])
    # Then the one that came before the acknowledgement is a redelivery, the other new
    assert (tally.stored, tally.duplicates) == (1, 1)
    assert len(stored(store)[1]) == 2 and unacked(store) == 1


def test_an_acknowledgement_alone_releases_and_a_sweep_forgets_old_rows(store) -> None:
    [first] = parts_of("TD", source="8613700000007")
    [other] = parts_of("CX", source="8613700000008")
    put(store, [first, other])
    assert unacked(store) == 2
    # When only an acknowledgement comes (no parts), its row goes - with a flush that has
    # no parts, or on its own (the MO lane in a quiet moment)
    put(store, [], acks=[(0, first)])
    assert unacked(store) == 1
    with store.engine.begin() as conn:
        assert release(conn, acks=[(0, "sim", first)]) == 1  # (already gone: no harm)
    # And a sweep long after the window forgets the other (its link died unanswered) when
    # asked to prune (the worker asks every ten minutes)
    put(store, [], now=T0 + 3 * RULES.duplicate_window, expire=True)
    assert unacked(store) == 1
    put(store, [], now=T0 + 3 * RULES.duplicate_window, expire=True, prune=True)
    assert unacked(store) == 0


def test_a_group_missing_a_part_expires_only_when_asked(store) -> None:
    long_ = parts_of(LONG, source="8613900000002")
    put(store, long_[:2])
    later = T0 + timedelta(seconds=120)
    # Given its wait is over: a flush that does not touch it and is no sweep leaves it
    put(store, parts_of("hi", source="8613700000009", at=later), now=later)
    assert len(stored(store)[1]) == 1
    # When a sweep asks, it is written with what came
    tally = put(store, [], now=later, expire=True)
    assert [(a.complete) for a in tally.assembled] == [False]
    assert stored(store)[1][-1][2:] == (2, False)


def test_a_message_another_worker_wrote_first_is_linked_to_it(store) -> None:
    # Given a part stored, and (another worker) a message already holding its dedup key
    long_ = parts_of(LONG, source="8613900000003")
    put(store, long_[:2])
    with store.engine.begin() as conn:
        first_id = conn.execute(select(func.min(MoPartRow.id))).scalar_one()
        raced = bulk.insert_returning(conn, into="mo_messages", key="dedup_key", returning=("id",),
                                      table=_message_row(f"mo:sim:{first_id}"))  # fmt: skip
    # When this worker completes the group
    tally = put(store, [long_[2]])
    # Then it writes no second message; the parts point at the first
    assert tally.assembled == []
    with store.sessions() as s:
        assert set(s.execute(select(MoPartRow.mo_id)).scalars()) == {raced[0][0]}


def test_insert_returning_answers_only_the_new_rows(store) -> None:
    # Given a message row, then the same key and a new one in one bulk insert
    with store.engine.begin() as conn:
        [(first,)] = bulk.insert_returning(conn, into="mo_messages", key="dedup_key",
                                           returning=("id",), table=_message_row("k1"))  # fmt: skip
        both = pa.concat_tables([_message_row("k1"), _message_row("k2")])
        again = bulk.insert_returning(conn, into="mo_messages", key="dedup_key",
                                      returning=("dedup_key", "id"), table=both)  # fmt: skip
    # Then only the new one comes back, with its id
    assert [key for key, _ in again] == ["k2"] and again[0][1] != first


def test_no_query_per_part_and_none_for_siblings_of_short_mo(store) -> None:
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cur, sql, *a: statements.append(" ".join(sql.split()[:2])))  # fmt: skip
    # Given 200 short MO in one flush
    put(store, [p for i in range(200) for p in parts_of(f"TD{i}", source=f"86137{i:08d}")])
    # Then a handful of statements, not one per part, and no SELECT of waiting siblings
    assert len(statements) <= 8, statements
    assert "SELECT mo_parts.id," not in statements, statements


def _message_row(key: str) -> pa.Table:
    return pa.table({
        "channel": ["sim"], "msisdn": ["+8613900000003"], "service_number": ["10690001"],
        "text": ["x"], "coding": [8], "parts": [1], "parts_expected": [3], "complete": [False],
        "undecodable": [False], "received_at": pa.array([T0], bulk.US),
        "stored_at": pa.array([T0], bulk.US), "dedup_key": [key],
    })  # fmt: skip


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)  # PostgreSQL's own path
def test_on_postgresql_a_flush_of_short_mo_is_one_statement(store) -> None:
    assert store.engine.dialect.name == "postgresql"
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cur, sql, *a: statements.append(" ".join(sql.split()[:3])))  # fmt: skip
    # Given 100 short MO, one of them twice, in one flush
    parts = [p for i in range(100) for p in parts_of(f"TD{i}", source=f"86137{i:08d}")]
    tally = put(store, [*parts, parts[7]])
    # Then one statement stored the parts and their messages, each part linked to its own
    assert [s for s in statements if not s.startswith(("BEGIN", "COMMIT"))] == ["WITH v AS"]
    assert (tally.stored, tally.duplicates, len(tally.assembled)) == (100, 1, 100)
    linked, rows = stored(store)
    assert linked == 100 and len(rows) == 100 and rows[7][1] == "TD7"
    with store.sessions() as s:
        pairs = s.execute(select(MoPartRow.mo_id, MoMessage.id, MoMessage.dedup_key, MoPartRow.id)
                          .join(MoMessage, MoMessage.id == MoPartRow.mo_id)).all()  # fmt: skip
    assert len(pairs) == 100 and all(key == f"mo:sim:{part}" for _, _, key, part in pairs)
