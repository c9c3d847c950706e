"""Campaigns on the delivery entry: re-runs, the finished state, category integrity, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dispatch_fakes import states
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_dispatch_deliver import approve, rows

from jingxin.data.store.contact import record_opt_out
from jingxin.dispatch.approval import CategoryError, check_category
from jingxin.dispatch.campaign import CampaignSpec, campaign_status, control, run_campaign
from jingxin.errors import SpecError

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
CATEGORIES = ("otp", "notification", "marketing")


def spec_for(tmp_path, numbers, *, code="bill", category="notification") -> CampaignSpec:
    (tmp_path / "a.csv").write_text("msisdn,name\n" + "".join(f"{n},王\n" for n in numbers))
    # No hold-out: these tests count what a campaign queues (experiments have their own).
    return CampaignSpec(name="t", category=category, template={"code": code},
                        audience={"path": tmp_path / "a.csv"},
                        experiment={"holdout": "none"})  # fmt: skip


def test_the_same_spec_runs_once_unless_again(store, tmp_path) -> None:
    # Given a notification campaign that ran
    approve(store, "bill", "notification")
    spec = spec_for(tmp_path, ["13900000001"])
    run_campaign(store, spec=spec, now=NOON)
    # When the same spec runs again, Then it is refused and nothing more is queued
    for _ in range(2):
        with pytest.raises(SpecError, match=r"already ran as campaign 1 .*--again"):
            run_campaign(store, spec=spec, now=NOON)
    assert states(store) == {"queued": 1}
    # And with again it is a new campaign that sends again
    assert run_campaign(store, spec=spec, now=NOON, again=True).campaign_id == 2
    assert states(store) == {"queued": 2}


def test_a_changed_audience_is_a_new_campaign(store, tmp_path) -> None:
    approve(store, "bill", "notification")
    run_campaign(store, spec=spec_for(tmp_path, ["13900000001"]), now=NOON)
    # When the audience file's content changes, Then the spec runs without --again
    assert run_campaign(store, spec=spec_for(tmp_path, ["13900000002"]), now=NOON).accepted == 1


def test_a_campaign_finishes_when_every_message_is_final(store, tmp_path) -> None:
    from sqlalchemy import update

    from jingxin.data.store.models import Message

    # Given a running campaign with queued messages
    approve(store, "bill", "notification")
    summary = run_campaign(store, spec=spec_for(tmp_path, ["13900000001"]), now=NOON)
    assert campaign_status(store, campaign_id=summary.campaign_id)["status"] == "running"
    # When every message is final, Then status says finished
    with store.transaction() as s:
        s.execute(update(Message).values(state="delivered"))
    assert campaign_status(store, campaign_id=summary.campaign_id)["status"] == "finished"
    # And pause, resume and cancel say so in one line and change nothing
    for action in ("pause", "resume", "cancel"):
        line = control(store, campaign_id=summary.campaign_id, action=action)
        assert line == f"campaign 1 is finished: {action} changes nothing"
    assert campaign_status(store, campaign_id=summary.campaign_id)["status"] == "finished"


def test_a_campaign_with_nothing_to_send_is_finished_at_once(store, tmp_path) -> None:
    approve(store, "bill", "notification")
    summary = run_campaign(store, spec=spec_for(tmp_path, ["12345"]), now=NOON)
    assert campaign_status(store, campaign_id=summary.campaign_id)["status"] == "finished"
    cancel = control(store, campaign_id=summary.campaign_id, action="cancel")
    assert "finished" in cancel and "changes nothing" in cancel


def test_a_marketing_template_cannot_go_out_as_a_notification(store, tmp_path) -> None:
    from jingxin.data.store.models import Campaign

    # Given an approved marketing template, an opted-out number, 23:30 (issue #11's example)
    approve(store, "promo", "marketing")
    with store.transaction() as s:
        record_opt_out(s, msisdn="+8613900000001", source="sms_reply", category="marketing",
                       at=NOON - timedelta(days=1))  # fmt: skip
    spec = spec_for(tmp_path, ["13900000001"], code="promo", category="notification")
    # When a notification campaign names it, Then it is refused before anything is written
    with pytest.raises(CategoryError, match="approved as marketing; it cannot be sent as"):
        run_campaign(store, spec=spec, now=NIGHT)
    assert states(store) == {}
    with store.sessions() as s:
        assert s.query(Campaign).count() == 0


def test_every_campaign_row_with_a_number_is_explained(store, tmp_path) -> None:
    from jingxin.data.store.audit import explain
    from jingxin.data.store.models import DecisionRecord

    # Given an opted-out number, a clean one, a repeat and a malformed one
    approve(store, "bill", "notification")
    with store.transaction() as s:
        record_opt_out(s, msisdn="+8613900000001", source="sms_reply", category="notification",
                       at=NOON - timedelta(days=1))  # fmt: skip
    spec = spec_for(tmp_path, ["13900000001", "13900000002", "13900000002", "12345"])
    # When the campaign runs
    run_campaign(store, spec=spec, now=NOON)
    # Then each rejection is kept with its reason; the admission's record is its outbox row
    kept = sorted(rows(store, DecisionRecord, "msisdn", "outcome", "reasons", "source"))
    assert kept == [("+8613900000001", "reject", "opted_out", "campaign"),
                    ("+8613900000002", "reject", "duplicate", "campaign"),
                    ("12345", "reject", "invalid_number", "campaign")]  # fmt: skip
    # And `jingxin why` explains every row: the admitted one too
    with store.sessions() as s:
        told = {m: sorted((e.outcome, e.reasons, e.source)
                          for e in explain(s, msisdn=m, days=30, now=NOON + timedelta(hours=1)))
                for m in ("+8613900000001", "+8613900000002", "12345")}  # fmt: skip
    assert told == {"+8613900000001": [("reject", "opted_out", "campaign")],
                    "+8613900000002": [("reject", "duplicate", "campaign"),
                                       ("send", "", "campaign")],
                    "12345": [("reject", "invalid_number", "campaign")]}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(approved=st.sampled_from(CATEGORIES), sending=st.sampled_from(CATEGORIES))
def test_a_template_goes_only_under_its_category_or_a_stricter_one(approved, sending) -> None:
    order = CATEGORIES.index
    if order(sending) < order(approved):
        with pytest.raises(CategoryError):
            check_category(approved=approved, sending=sending, what="t")
    else:
        check_category(approved=approved, sending=sending, what="t")


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    from jingxin.data.store import open_store

    opened = open_store(f"sqlite:///{tmp_path_factory.mktemp('p') / 'jx.db'}", upgrade=True)
    yield opened
    opened.dispose()


EXAMPLES = iter(range(10**6))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(sending=st.sampled_from(CATEGORIES), source=st.sampled_from(["campaign", "api", "inbox"]),
       body=st.text(alphabet=st.sampled_from("积分兑换流量包您好欢迎ab1 "), min_size=1, max_size=40))
def test_no_marketing_text_reaches_another_lane_or_lacks_the_unsubscribe_text(
    shared_store, sending, source, body
) -> None:
    from jingxin.data.store.models import Message
    from jingxin.dispatch.deliver import Delivery, deliver_one

    # Given a text approved as marketing
    n = next(EXAMPLES)
    approve(shared_store, f"promo{n}", "marketing", body=body.strip() or "x")
    delivery = Delivery(msisdn=f"139{n:08d}", source=source, idempotency_key=f"k{n}",
                        template=f"promo{n}", variables={"name": "王"}, category=sending,
                        source_id="1" if source == "campaign" else None)  # fmt: skip
    # When a sender asks for it under any category
    try:
        deliver_one(shared_store, delivery=delivery, now=NOON)
    except CategoryError:
        assert sending != "marketing"
    # Then whatever is queued is in the marketing lane and carries the unsubscribe text
    for category, text in rows(shared_store, Message, "category", "text"):
        assert category == "marketing" and text.endswith("回T退订")
