"""run_pending on a real SQLite store with a fake replier: outcomes recorded, handlers run
at least once and idempotently, a failing handler does not stop the run, attribution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import delete
from twoway_rows import NOW, NUMBER, FakeReplier, add_mo, add_sent, opt_outs, outcome_of

from jingxin.config import load_settings
from jingxin.data.store.models import MoOutcome
from jingxin.dispatch import handler_runs
from jingxin.dispatch.handlers import (
    HandlerContext,
    HandlerRegistry,
    HandlerResult,
    PendingCursor,
    default_registry,
    run_pending,
)
from jingxin.errors import StoreError

SENDERS = {"sim-smpp": "10690000", "sim-cmpp": "1069012345"}


def context(replier: FakeReplier, **extra) -> HandlerContext:
    return HandlerContext(default_senders=SENDERS, reply=replier, **extra)


def run(store, replier, registry=None, ids=None, **extra):
    registry = registry or default_registry(load_settings())
    return run_pending(store, registry=registry, context=context(replier, **extra), now=NOW,
                       ids=ids)


def test_td_opts_out_for_the_campaign_tenant_and_replies_once(store) -> None:
    # Given a campaign message of tenant 'operator' sent an hour ago from the channel default
    sent = add_sent(store, source="campaign", source_id="7", campaign_id=7, arm="B")
    mo_id = add_mo(store, text="ＴＤ")
    replier = FakeReplier()
    # When the handlers run
    tally = run(store, replier)
    # Then the number is opted out of the operator's marketing, once, from now
    (opt_out,) = opt_outs(store)
    assert (opt_out.tenant_id, opt_out.category, opt_out.source) == ("operator", None, "sms_reply")
    assert opt_out.recorded_at == NOW
    # And ONE confirmation went back from the service number written to
    (key,) = replier.sent
    assert key == f"inbox:{mo_id}:reply"
    assert replier.sent[key][1]["service_number"] == "10690000"
    assert replier.sent[key][1]["text"] == "您已成功退订，将不再收到营销短信。"
    # And the outcome names the handler, the attribution and the reply
    out = outcome_of(store, mo_id)
    assert (out.outcome, out.handler, out.message_id, out.campaign_id) == (
        "handled", "unsubscribe", sent, 7)
    assert (out.source, out.source_id, out.arm, out.reply_message_id) == (
        "campaign", "7", "B", replier.sent[key][0])
    assert tally.handled == 1 and tally.by_handler == {"unsubscribe": 1}


@pytest.mark.parametrize("text", ["TD.", "【TD】", "退订。", "TD🙏", "td!", "退订，谢谢"])
def test_a_no_with_punctuation_or_emoji_still_opts_out(store, text: str) -> None:
    # Given a subscriber who answers a campaign with a refusal dressed as phones send it
    add_sent(store, source="campaign", source_id="7", campaign_id=7)
    mo_id = add_mo(store, text=text)
    replier = FakeReplier()
    # When the handlers run
    run(store, replier)
    # Then it is the unsubscribe it means: opted out, one confirmation
    (opt_out,) = opt_outs(store)
    assert (opt_out.tenant_id, opt_out.source) == ("operator", "sms_reply")
    assert list(replier.sent) == [f"inbox:{mo_id}:reply"]
    assert (outcome_of(store, mo_id).handler, outcome_of(store, mo_id).outcome) == (
        "unsubscribe", "handled")


@dataclass
class Echo:
    name: str = "echo"

    def handle(self, mo, *, context) -> HandlerResult:
        return HandlerResult(detail="echo")


def test_a_no_an_older_registry_missed_is_honoured_by_retry_unmatched(store) -> None:
    # Given a refusal and a chat recorded "no_handler" by a registry that did not read them
    # (an older version: "TD." was no keyword), and a TD already handled
    refusal = add_mo(store, text="TD.", msisdn="+8613912345601")
    chat = add_mo(store, text="hello", msisdn="+8613912345602")
    older = HandlerRegistry()
    older.register(Echo(), keywords=["zz"])  # (an empty registry would mean the default)
    run(store, FakeReplier(), registry=older)
    assert {outcome_of(store, i).outcome for i in (refusal, chat)} == {"no_handler"}
    done = add_mo(store, text="TD", msisdn="+8613912345603")
    replier = FakeReplier()
    run(store, replier)
    # When the MO no handler answered are matched again with today's registry
    forgotten = handler_runs.forget_unmatched(store, registry=default_registry(load_settings()),
                                              chunk=1)  # fmt: skip
    run(store, replier, ids=None)
    # Then the refusal is opted out and confirmed now, the chat stays as it was, and the
    # TD handled before is not handled twice
    assert forgotten == 1
    assert outcome_of(store, refusal).handler == "unsubscribe"
    assert outcome_of(store, chat).outcome == "no_handler"
    assert [len(opt_outs(store, n)) for n in ("+8613912345601", "+8613912345602",
                                              "+8613912345603")] == [1, 0, 1]
    assert sorted(replier.sent) == sorted([f"inbox:{done}:reply", f"inbox:{refusal}:reply"])


class Killed(BaseException):
    """The process dies (kill -9): nothing after it runs, no fallback catches it."""


def test_a_crash_before_the_outcome_reruns_the_handler_without_doubling_anything(
    store, monkeypatch
) -> None:
    # Given a TD whose batch dies after its effects and reply, before its outcome commits
    mo_id = add_mo(store, text="TD")
    replier = FakeReplier()
    real = handler_runs._record_all
    calls = []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise Killed()
        return real(*args, **kwargs)

    monkeypatch.setattr(handler_runs, "_record_all", dying)
    with pytest.raises(Killed):
        run(store, replier)
    assert outcome_of(store, mo_id) is None  # still pending
    # When the handlers run again
    run(store, replier)
    # Then the handler ran twice, but there is one opt-out and one reply
    assert replier.calls == 2 and len(replier.sent) == 1
    assert len(opt_outs(store)) == 1
    out = outcome_of(store, mo_id)
    assert out.outcome == "handled" and "already recorded" in out.detail
    assert "duplicate" in out.detail


def test_a_store_that_cannot_record_ends_the_run_and_leaves_the_mo_pending(
    store, monkeypatch
) -> None:
    # Given a store that refuses every outcome insert (batch and one at a time)
    mo_id = add_mo(store, text="TD")

    def refuse(*args, **kwargs):
        raise StoreError("recording the outcome failed: connection lost")

    monkeypatch.setattr(handler_runs, "_record_all", refuse)
    monkeypatch.setattr(handler_runs, "_record", refuse)
    # When the handlers run, Then the run ends with the store's error and the MO is pending
    with pytest.raises(StoreError):
        run(store, FakeReplier())
    assert outcome_of(store, mo_id) is None


def test_no_handler_and_failed_are_recorded_and_the_run_goes_on(store) -> None:
    @dataclass
    class Broken:
        name: str = "broken"

        def handle(self, mo, *, context) -> HandlerResult:
            raise ValueError("the hall is closed")

    # Given a registry with a broken catch-all on 10010 and the default unsubscribe words
    # (10086 is the default hall's, which a broken handler must not take from it)
    registry = default_registry(load_settings())
    registry.register(Broken(), service_number="10010")
    first = add_mo(store, text="查话费", service_number="10010")
    second = add_mo(store, text="你好", service_number="10690000")
    third = add_mo(store, text="TD", service_number="10690000")
    # When the handlers run
    tally = run(store, FakeReplier(), registry)
    # Then the broken one failed with its error, the unknown one has no handler, TD worked
    assert outcome_of(store, first).outcome == "failed"
    assert outcome_of(store, first).detail == "ValueError: the hall is closed"
    assert outcome_of(store, second).outcome == "no_handler"
    assert outcome_of(store, second).handler is None
    assert outcome_of(store, third).outcome == "handled"
    assert (tally.failed, tally.no_handler, tally.handled) == (1, 1, 1)
    # And a second run has nothing left to do
    assert run(store, FakeReplier(), registry).total == 0


def test_an_invalid_sender_number_fails_that_mo_only(store) -> None:
    # Given an MO from a raw source that never normalised, then a good one
    bad = add_mo(store, text="TD", msisdn="12345")
    good = add_mo(store, text="TD")
    run(store, FakeReplier())
    # Then the bad one failed naming the number problem and the good one was handled
    assert outcome_of(store, bad).outcome == "failed"
    assert "msisdn" in outcome_of(store, bad).detail
    assert outcome_of(store, good).outcome == "handled"


def test_unattributed_td_opts_out_of_the_operator_and_incomplete_mo_still_match(store) -> None:
    # Given no message sent to the number, and an incomplete MO whose first part says TD
    mo_id = add_mo(store, text="TD", complete=False)
    run(store, FakeReplier())
    (opt_out,) = opt_outs(store)
    assert opt_out.tenant_id == "operator"
    out = outcome_of(store, mo_id)
    assert out.message_id is None and out.tenant_id == "operator" and out.outcome == "handled"


def test_attribution_takes_the_last_message_from_that_service_number_in_the_window(store) -> None:
    # Given messages to the number: too old, from the CMPP default, an explicit sender, the
    # inbox's own reply (newest), and one for another number
    add_sent(store, sent_at=NOW - timedelta(hours=80), source_id="old")
    add_sent(store, sent_at=NOW - timedelta(hours=3), source_id="smpp-default")
    add_sent(store, sent_at=NOW - timedelta(hours=2), channel="sim-cmpp", source_id="cmpp")
    explicit = add_sent(store, sent_at=NOW - timedelta(hours=1), sender="106900001",
                        source="journey", source_id="welcome", campaign_id=None)
    add_sent(store, sent_at=NOW - timedelta(minutes=5), sender="106900001", source="inbox",
             source_id="99", campaign_id=None)
    add_sent(store, msisdn="+8613900000000", sent_at=NOW - timedelta(minutes=1))
    to_extension = add_mo(store, text="好的", service_number="10690000123")
    to_default = add_mo(store, text="好的", service_number="10690000")
    to_cmpp = add_mo(store, text="好的", service_number="1069012345")
    to_nowhere = add_mo(store, text="好的", service_number="12345")
    run(store, FakeReplier())
    # Then each MO answers the last message sent from the number it was written to
    assert outcome_of(store, to_extension).message_id == explicit
    assert outcome_of(store, to_extension).source == "journey"
    assert outcome_of(store, to_default).source_id == "smpp-default"
    assert outcome_of(store, to_cmpp).source_id == "cmpp"
    assert outcome_of(store, to_nowhere).message_id is None
    # And with a 1-hour window the older default-channel message is out of reach
    with store.transaction() as session:
        session.execute(delete(MoOutcome))
    run(store, FakeReplier(), window=timedelta(hours=1))
    assert outcome_of(store, to_default).message_id is None


def test_the_cursor_reads_only_new_mo_until_the_next_rescan(store) -> None:
    # Given a run that handled MO 10 (the cursor now starts after it)
    add_mo(store, text="你好", mo_id=10)
    cursor = PendingCursor(rescan_every=3600, lookback=3)
    registry = HandlerRegistry()
    assert run(store, FakeReplier(), registry, cursor=cursor).no_handler == 1
    # When MO with lower ids commit late (another worker), Then an incremental run skips
    # them, and the periodic rescan finds those within its look-back (ids 7..10)
    late = add_mo(store, text="你好", mo_id=8)
    too_late = add_mo(store, text="你好", mo_id=2)
    assert run(store, FakeReplier(), registry, cursor=cursor).total == 0
    cursor.rescan_every = 0
    assert run(store, FakeReplier(), registry, cursor=cursor).no_handler == 1
    assert outcome_of(store, late).outcome == "no_handler"
    # And a new process (a fresh cursor, as `jingxin inbox process` makes) sees everything
    assert run(store, FakeReplier(), registry).no_handler == 1
    assert outcome_of(store, too_late).outcome == "no_handler"


def test_an_outcome_recorded_by_another_runner_is_not_recorded_twice(store) -> None:
    from jingxin.dispatch.handlers import InboundMessage

    mo_id = add_mo(store, text="你好")
    mo = InboundMessage(id=mo_id, channel="sim-smpp", msisdn=NUMBER, service_number="10690000",
                        text="你好", received_at=NOW)
    result = HandlerResult()
    assert handler_runs._record(store, mo=mo, handler=None, outcome="no_handler",
                                result=result, at=NOW)
    assert not handler_runs._record(store, mo=mo, handler="x", outcome="handled",
                                    result=result, at=NOW)
    assert outcome_of(store, mo_id).outcome == "no_handler"


def test_auto_reply_answers_its_keyword(store) -> None:
    settings = load_settings(inbox={"auto_replies": [
        {"service_number": "10690000", "keyword": "CX", "reply": "流量余量请登录App查看"}]})
    mo_id = add_mo(store, text="cx")
    replier = FakeReplier()
    run_pending(store, registry=default_registry(settings), context=context(replier), now=NOW)
    assert replier.sent[f"inbox:{mo_id}:reply"][1]["text"] == "流量余量请登录App查看"
    out = outcome_of(store, mo_id)
    assert out.handler == "autoreply" and out.reply_message_id == 1000
    assert opt_outs(store) == []


@dataclass
class Picky:
    """A handler without handle_batch that refuses one text."""

    name: str = "picky"

    def handle(self, mo, *, context) -> HandlerResult:
        if mo.text == "坏":
            raise ValueError("cannot answer that")
        return HandlerResult(detail="ok", reply="收到")


def test_one_raising_handler_in_a_batch_of_ten_fails_alone(store) -> None:
    # Given ten MO to 10086 in one batch, the fourth of which its handler refuses
    registry = HandlerRegistry()
    registry.register(Picky(), service_number="10086")
    ids = [add_mo(store, text="坏" if i == 3 else "好", msisdn=f"+86139123456{i:02d}",
                  service_number="10086") for i in range(10)]
    replier = FakeReplier()
    # When the handlers run
    tally = run(store, replier, registry)
    # Then the batch fell back to one MO at a time: nine handled with one reply each,
    # the bad one failed with its error
    assert (tally.handled, tally.failed, tally.fallbacks) == (9, 1, 1)
    assert outcome_of(store, ids[3]).outcome == "failed"
    assert outcome_of(store, ids[3]).detail == "ValueError: cannot answer that"
    good = [i for n, i in enumerate(ids) if n != 3]
    assert all(outcome_of(store, i).outcome == "handled" for i in good)
    assert sorted(replier.sent) == sorted(f"inbox:{i}:reply" for i in good)
    assert outcome_of(store, ids[0]).reply_message_id == replier.sent[f"inbox:{ids[0]}:reply"][0]
    assert "ok; reply queued" in outcome_of(store, ids[0]).detail


def test_a_bad_number_in_a_batch_of_td_fails_alone_and_the_rest_opt_out(store) -> None:
    # Given ten TD in one batch, one from a raw source that never normalised, and a
    # foreign number's TD and an unknown number's "0" too (no handler for that: none)
    numbers = [f"+86139123456{i:02d}" for i in range(9)]
    ids = [add_mo(store, text="TD", msisdn=n) for n in numbers[:5]]
    bad = add_mo(store, text="TD", msisdn="12345")
    foreign = add_mo(store, text="TD", msisdn="+447911123456")
    unmatched = add_mo(store, text="0", msisdn="abc", service_number="10699999")
    ids += [add_mo(store, text="TD", msisdn=n) for n in numbers[5:]]
    replier = FakeReplier()
    # When the handlers run
    tally = run(store, replier)
    # Then the bad MO failed naming the sender and why, without failing the batch (no
    # fallback to one MO at a time), and the nine others opted out and got one
    # confirmation each
    assert (tally.handled, tally.failed, tally.no_handler, tally.fallbacks) == (9, 2, 1, 0)
    assert outcome_of(store, bad).detail.startswith("sender: invalid msisdn '12345': too short")
    assert "foreign" in outcome_of(store, foreign).detail
    assert outcome_of(store, bad).handler == "unsubscribe"
    assert outcome_of(store, unmatched).outcome == "no_handler"
    assert all(len(opt_outs(store, n)) == 1 for n in numbers)
    assert len(replier.sent) == 9 and f"inbox:{bad}:reply" not in replier.sent


@dataclass
class BulkReplier(FakeReplier):
    """A fake replier with the bulk form: counts its calls."""

    batches: list = None

    def many(self, store, *, requests, now=None):
        self.batches = (self.batches or []) + [len(requests)]
        return {r.mo_id: self(store, mo_id=r.mo_id, msisdn=r.msisdn,
                              service_number=r.service_number, text=r.text,
                              tenant_id=r.tenant_id, now=now) for r in requests}


def statements(store, action) -> int:
    from sqlalchemy import event

    seen = []

    def count(*args) -> None:
        seen.append(1)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        action()
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    return len(seen)


def test_a_batch_costs_the_same_statements_whatever_its_size(store) -> None:
    # Given a campaign message to each number, then TD and a keyword from every number
    settings = load_settings(inbox={"auto_replies": [{"keyword": "CX", "reply": "查询结果"}]})
    registry = default_registry(settings)

    def batch(size: int, offset: int) -> tuple[int, BulkReplier, list[int]]:
        numbers = [f"+8613912{offset + i:06d}" for i in range(size)]
        for n in numbers:
            add_sent(store, msisdn=n)
        ids = [add_mo(store, text="TD" if i % 2 else "CX", msisdn=n)
               for i, n in enumerate(numbers)]
        replier = BulkReplier()
        ctx = context(replier)
        used = statements(store, lambda: run_pending(store, registry=registry, context=ctx,
                                                     now=NOW))
        return used, replier, ids

    # When a batch of 4 and a batch of 40 are handled (after a first run has created the
    # operator's tenant)
    batch(2, 500)
    small, _, _ = batch(4, 0)
    large, replier, ids = batch(40, 100)
    # Then both take the same number of statements (one read, one attribution, one
    # opt-out lookup and insert, one outcome insert, ...) and one bulk reply call
    assert small == large
    assert replier.batches == [40]
    # And every MO is attributed and handled, half opted out
    assert all(outcome_of(store, i).outcome == "handled" for i in ids)
    assert all(outcome_of(store, i).message_id is not None for i in ids)
    assert outcome_of(store, ids[0]).handler == "autoreply"
    assert outcome_of(store, ids[1]).handler == "unsubscribe"


def test_record_opt_outs_normalises_like_one_and_refuses_a_bad_entry_whole(store) -> None:
    from jingxin.data.store.contact import record_opt_outs
    from jingxin.errors import InputError

    # Given entries in national and E.164 forms
    with store.transaction() as session:
        done = record_opt_outs(session, source="sms_reply", at=NOW, entries=[
            {"msisdn": "13912345678", "tenant_id": "operator", "note": "a"},
            {"msisdn": "+8613912345679", "note": "b"}])
    # Then both are stored in E.164 at the instant given
    assert done == 2
    assert [(o.note, o.recorded_at) for o in opt_outs(store)] == [("a", NOW)]
    # And a batch with one bad number, or an unknown tenant, writes nothing
    for bad in ({"msisdn": "12345"}, {"msisdn": "13912345670", "tenant_id": "nobody"}):
        with pytest.raises(InputError, match="opt_out"):
            with store.transaction() as session:
                record_opt_outs(session, source="sms_reply", entries=[
                    {"msisdn": "13912345671"}, bad])
    assert opt_outs(store, "+8613912345671") == []


def test_a_store_outage_in_a_handler_leaves_the_batch_pending_not_failed(store) -> None:
    @dataclass
    class Unlucky:
        name: str = "unlucky"

        def handle(self, mo, *, context) -> HandlerResult:
            raise StoreError("opting out failed: connection refused")

    # Given MO whose handler meets a database that has gone away
    registry = HandlerRegistry()
    registry.register(Unlucky(), service_number="10086")
    ids = [add_mo(store, text="TD", msisdn=f"+86139123457{i:02d}", service_number="10086")
           for i in range(3)]  # fmt: skip
    # When the handlers run, Then the run ends with the store's error (the outage says
    # nothing about these MO) and every MO stays pending for the next run
    with pytest.raises(StoreError):
        run(store, FakeReplier(), registry)
    assert [outcome_of(store, i) for i in ids] == [None, None, None]


def test_a_run_for_given_ids_handles_only_those_and_leaves_the_cursor(store) -> None:
    # Given three pending MO (two stored by this worker, one by another)
    mine = [add_mo(store, text="TD", msisdn=f"+861380013800{i}") for i in (1, 2)]
    theirs = add_mo(store, text="TD", msisdn="+8613800138009")
    cursor = PendingCursor()
    # When this worker answers its own
    tally = run(store, FakeReplier(), ids=mine, cursor=cursor)
    # Then only those were handled, the other waits, and the cursor did not move past it
    assert tally.handled == 2
    assert outcome_of(store, mine[0]).outcome == "handled"
    assert outcome_of(store, theirs) is None
    assert cursor.after == 0
    # And a run over whatever is pending picks it up
    assert run(store, FakeReplier(), cursor=cursor).handled == 1


def test_an_mo_clears_the_invalid_mark_so_its_answer_is_not_refused(store) -> None:
    from sqlalchemy import insert, select

    from jingxin.data.store.models import Message, NumberFailure, SubscriberState

    # Given a number marked invalid after three undeliverable messages in a row
    with store.transaction() as s:
        s.execute(insert(NumberFailure).values(msisdn=NUMBER, failures=3, last_status="undeliverable",
                                               last_at=NOW - timedelta(hours=2)))  # fmt: skip
        s.execute(insert(SubscriberState).values(
            msisdn=NUMBER, in_service=True, complaint_sensitive=False,
            invalid_since=NOW - timedelta(hours=2), invalid_reason="3 permanent delivery failures",
            updated_at=NOW - timedelta(hours=2)))  # fmt: skip
    # When that number texts TD and the handlers answer through the real delivery entry
    mo_id = add_mo(store, text="TD")
    settings = load_settings()
    tally = run_pending(store, registry=default_registry(settings),
                        context=HandlerContext.from_settings(settings, store=store), now=NOW)  # fmt: skip
    # Then the number counts as in service again and the confirmation is queued, not refused
    with store.sessions() as s:
        state = s.execute(select(SubscriberState.invalid_since, SubscriberState.invalid_reason)
                          .where(SubscriberState.msisdn == NUMBER)).one()  # fmt: skip
        failures = s.scalar(select(NumberFailure.failures).where(NumberFailure.msisdn == NUMBER))
        reply = s.execute(select(Message.state).where(Message.source == "inbox")).scalars().all()
    assert tuple(state) == (None, None) and failures == 0
    assert reply == ["queued"] and tally.handled == 1
    assert outcome_of(store, mo_id).reply_message_id is not None


def test_warming_the_handlers_statements_reads_only_and_never_stops_a_start(store, caplog) -> None:
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message, MoOutcome, OptOut
    from jingxin.dispatch.bootstrap import MoHandlerRunner, warm_statements

    # Given a runner over a store with one MO waiting
    mo_id = add_mo(store, text="TD")
    runner = MoHandlerRunner(store, registry=default_registry(load_settings()),
                             context=context(FakeReplier()), limit=64, most=256)  # fmt: skip
    # When its statements are warmed, Then nothing was answered, written or sent
    warm_statements(runner)
    with store.transaction() as session:
        assert [session.scalar(select(func.count()).select_from(m))
                for m in (MoOutcome, OptOut, Message)] == [0, 0, 0]  # fmt: skip
    assert outcome_of(store, mo_id) is None

    # And a warm-up that fails is logged, not raised: the first real batch will tell
    class Broken(MoHandlerRunner):
        def handle_ids(self, ids) -> None:
            raise StoreError("reading the pending MO failed: connection refused")

    broken = Broken(store, registry=default_registry(load_settings()),
                    context=context(FakeReplier()), limit=64, most=256)  # fmt: skip
    warm_statements(broken)
    assert "warming the MO handlers' statements failed" in caplog.text


def test_a_batch_is_shared_among_handler_processes_by_sender_in_order() -> None:
    from types import SimpleNamespace

    from jingxin.dispatch.handler_process import by_sender

    # Given MO from five numbers, some sending several (a KT and its Y)
    items = [SimpleNamespace(mo_id=i, sender=f"+861370000000{i % 5}") for i in range(20)]
    groups = by_sender(items, 3)
    # Then every MO is in exactly one group, a number's MO all in one, in their order
    assert sorted(i for g in groups for i in g) == list(range(20))
    for number in {item.sender for item in items}:
        mine = [item.mo_id for item in items if item.sender == number]
        holding = [g for g in groups if set(mine) & set(g)]
        assert len(holding) == 1 and [i for i in holding[0] if i in mine] == mine
    # And the same numbers land in the same groups on another call
    assert by_sender(items, 3) == groups
