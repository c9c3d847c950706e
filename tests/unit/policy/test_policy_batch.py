"""Arbitration by example, the batch form on broken rows, configuration and the memory sink."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from jingxin.domain.candidate import Candidate, Decision, Outcome, Reason
from jingxin.errors import InputError, PolicyError
from jingxin.policy.arbitration import decide_many
from jingxin.policy.audit import MemoryAuditSink, decision_rows
from jingxin.policy.batch import decide_batch
from jingxin.policy.columns import batch_table, decisions_of, ledger_table
from jingxin.policy.config import CapLimits, PolicyConfig, TenantRules
from jingxin.policy.state import ContactMark, ContactState

NOW = datetime(2026, 6, 3, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
A, B = "+8613800000001", "+8613800000002"
CONFIG = PolicyConfig(tenants={"op": TenantRules(implied_consent=True)})


def offer(msisdn: str, key: str, **kw) -> Candidate:
    return Candidate(msisdn, "op", "marketing", kw.pop("source", "campaign"), key, **kw)


def test_the_best_candidate_takes_the_last_place_and_names_itself_to_the_others():
    # Given three offers for A (daily cap 1) and one for B
    batch = [
        offer(A, "low", source_id=1, priority=1, score=9.0),
        offer(A, "high", source_id=2, priority=2, score=0.1),
        offer(A, "high-but-poorer", source_id=3, priority=2, score=0.0),
        offer(B, "alone", source_id=1),
    ]
    # When decided together
    decisions = decide_many(batch, {}, NOW, CONFIG)
    # Then priority wins, then score; the losers name the winner
    assert decisions == [
        Decision(Outcome.REJECT, None, (Reason.OUTRANKED,), "high"),
        Decision(Outcome.SEND, NOW),
        Decision(Outcome.REJECT, None, (Reason.OUTRANKED,), "high"),
        Decision(Outcome.SEND, NOW),
    ]


def test_ties_fall_to_the_earlier_wanted_time_then_the_key():
    later = NOW + timedelta(hours=1)
    batch = [offer(A, "b", wanted_at=later), offer(A, "c"), offer(A, "a")]
    decisions = decide_many(batch, {}, NOW, CONFIG)
    assert [d.outcome for d in decisions] == [Outcome.REJECT, Outcome.REJECT, Outcome.SEND]
    assert decisions[0].winner == "a"


def test_the_ledger_alone_gives_a_cap_reason_not_outranked():
    state = ContactState(A, contacts=(ContactMark("marketing", date(2026, 6, 3)),))
    decisions = decide_many([offer(A, "x"), offer(A, "y")], {A: state}, NOW, CONFIG)
    assert [d.reasons for d in decisions] == [(Reason.CAP_DAY,), (Reason.CAP_DAY,)]


def test_the_same_key_twice_in_one_batch_is_a_duplicate():
    decisions = decide_many([offer(A, "k", priority=0), offer(B, "k", priority=5)], {}, NOW, CONFIG)
    assert decisions[0] == Decision(Outcome.REJECT, None, (Reason.DUPLICATE,))
    assert decisions[1].outcome == Outcome.SEND


def test_a_broken_row_never_loses_the_batch():
    # Given a batch with nulls and junk in every field
    table = pa.table(
        {
            "msisdn": [A, None, "junk", B, A],
            "tenant_id": ["op", "op", "op", None, "op"],
            "category": ["marketing", "marketing", "marketing", "otp", None],
            "source": ["campaign", "campaign", "api", "api", "api"],
            "source_id": [1, None, None, None, None],
            "priority": [None, 1, 1, 1, 1],
            "score": [None, float("nan"), 1.0, 1.0, 1.0],
            "wanted_at": pa.array([None] * 5, pa.timestamp("us", tz="UTC")),
            "idempotency_key": ["ok", "k2", "k3", "k4", None],
        }
    )
    # When decided (no state columns at all: defaults)
    out = decisions_of(decide_batch(table, now=NOW, config=CONFIG))
    # Then every row has its own reason and the good row goes
    assert [d.reasons for d in out] == [
        (),
        (Reason.BAD_CANDIDATE,),
        (Reason.INVALID_NUMBER,),
        (Reason.UNKNOWN_TENANT,),
        (Reason.BAD_CANDIDATE,),
    ]
    assert out[0] == Decision(Outcome.SEND, NOW)


def test_a_missing_or_mistyped_column_names_the_column():
    table = batch_table([offer(A, "k")], {}, NOW)
    with pytest.raises(InputError, match="idempotency_key"):
        decide_batch(table.drop_columns(["idempotency_key"]), now=NOW, config=CONFIG)
    bad = table.set_column(5, "priority", pa.array(["high"]))
    with pytest.raises(InputError, match="priority"):
        decide_batch(bad, now=NOW, config=CONFIG)


def test_an_empty_batch_gives_an_empty_answer():
    empty = batch_table([], {}, NOW)
    assert decide_batch(empty, now=NOW, config=CONFIG).num_rows == 0


def test_batch_uses_the_ledger():
    state = ContactState(A, contacts=(ContactMark("marketing", date(2026, 6, 3), 1),))
    table = batch_table([offer(A, "k", source_id=1)], {A: state}, NOW)
    without = decisions_of(decide_batch(table, now=NOW, config=CONFIG))
    with_ledger = decisions_of(
        decide_batch(table, now=NOW, config=CONFIG, ledger=ledger_table([state]))
    )
    assert without[0].outcome == Outcome.SEND
    assert with_ledger[0].reasons == (Reason.CAP_DAY, Reason.CAMPAIGN_CAP_DAY)


def test_tenant_overrides_merge_onto_defaults_and_bad_ones_name_the_field():
    config = PolicyConfig.build(
        {"op": {"quiet_start": "22:00"}, "shop": {}}, defaults={"quiet_end": "09:00"}
    )
    assert config.tenants["op"].quiet_start_minute == 22 * 60
    assert config.tenants["shop"].quiet_end_minute == 9 * 60
    assert config.rules_for("ghost") is None
    with pytest.raises(PolicyError, match="shop.*caps"):
        PolicyConfig.build({"shop": {"caps": {"marketing": {"day": -1}}}})
    with pytest.raises(PolicyError, match="default_timezone"):
        PolicyConfig.build({"shop": {"default_timezone": "Mars/Olympus"}})
    assert TenantRules().caps["marketing"] == CapLimits(day=1, week=2, month=4)


def test_the_memory_sink_keeps_compact_rows():
    batch = [offer(A, "win", source_id=1, priority=1), offer(A, "lose", source_id=2)]
    decisions = decide_many(batch, {}, NOW, CONFIG)
    table, ids = decision_rows(list(zip(batch, decisions, strict=True)))
    sink = MemoryAuditSink()
    assert sink.write(table, decided_at=NOW, source_ids=ids) == 2
    assert sink.rows[1]["reasons"] == "outranked"
    assert sink.rows[1]["detail"] == {"source_id": 2, "winner": "win"}
    assert sink.rows[0]["outcome"] == "send" and sink.rows[0]["send_at"] == NOW


@pytest.mark.parametrize("winner_key", ["plain-key", 'quote"d', "back\\slash", "中文键"])
def test_detail_json_survives_any_winner_key(winner_key):
    batch = [offer(A, winner_key, source_id=1, priority=1), offer(A, "lose")]
    table = decide_batch(batch_table(batch, {}, NOW), now=NOW, config=CONFIG)
    sink = MemoryAuditSink()
    sink.write(table, decided_at=NOW, source_ids=pa.array([1, None]))
    assert [r["detail"] for r in sink.rows] == [{"source_id": 1}, {"winner": winner_key}]
