"""Multi-step journeys on a real store with a fake clock: a send, a 3-day wait and a branch
on replied / ordered / nothing, walked through each branch; the hold-out group sent
nothing but measured the same way; a crash mid-batch resumed by a fresh process."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from textwrap import dedent

import pyarrow as pa
import pytest
from sqlalchemy import select

from jingxin.content import catalog
from jingxin.content.library import TemplateDocument
from jingxin.data.store.engine import open_store
from jingxin.data.store.models import (
    HallOrder,
    JourneyEnrolment,
    JourneyEvent,
    Message,
    MoMessage,
    MoOutcome,
)
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.journeys import engine
from jingxin.journeys.engine import advance, enrol, in_holdout
from jingxin.journeys.status import journey_status
from jingxin.journeys.flow import parse_flow

T0 = datetime(2026, 10, 8, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
DAY = timedelta(days=1)
_keys = itertools.count(1)

JOURNEY = dedent("""\
    name: care_nudge
    category: notification
    entry: {audience: unused.csv}
    holdout: 0.3
    steps:
      - {id: offer, type: send, template: journey.nudge}
      - {id: pause, type: wait, days: 3}
      - id: check
        type: branch
        on:
          - {event: ordered, within: {days: 3}, goto: won}
          - {event: replied, within: {days: 3}, goto: thanks}
          - {event: none, within: {days: 4}, goto: lost}
        default: lost
      - {id: won, type: exit, outcome: converted}
      - {id: lost, type: exit, outcome: no_response}
      - {id: thanks, type: send, template: journey.thanks, variables: {gift: 1GB流量}}
    """)


def journey(tmp_path, text: str = JOURNEY):
    (tmp_path / "unused.csv").write_text("msisdn\n", encoding="utf-8")
    return parse_flow(text, source="care.yaml", base_dir=tmp_path)


def numbers(flow, *, treated: int, held: int) -> tuple[list[str], list[str]]:
    """The first numbers the journey's hash puts in each group."""
    pool = (f"+861391234{n:04d}" for n in range(10_000))
    out: tuple[list[str], list[str]] = ([], [])
    for msisdn in pool:
        group = out[1] if in_holdout(msisdn, flow.name, flow.holdout) else out[0]
        if len(group) < (held if group is out[1] else treated):
            group.append(msisdn)
        if len(out[0]) == treated and len(out[1]) == held:
            return out
    raise AssertionError("pool too small")


def seeded(url: str):
    store = open_store(url, upgrade=True)
    with store.transaction() as session:
        ensure_default_tenant(session)
        for code, body, variables in (
                ("journey.nudge", "{{ name }}，您的套餐有新权益，回复1了解。", {"name": "str"}),
                ("journey.thanks", "{{ name }}，感谢回复，已为您备好{{ gift }}。",
                 {"name": "str", "gift": "str"})):  # fmt: skip
            made = catalog.add_template(session, document=TemplateDocument(
                code=code, category="notification", body=body, variables=variables))
            catalog.submit_template(session, template_id=made.id)
            catalog.approve_template(session, template_id=made.id, reviewer="r")
    return store


@pytest.fixture
def store(tmp_path):
    opened = seeded(f"sqlite:///{tmp_path / 'jx.db'}")
    yield opened
    opened.dispose()


def reply(store, msisdn: str, *, at: datetime, source_id: str = "care_nudge:offer") -> None:
    """An MO from ``msisdn`` the inbox attributed to a journey message."""
    with store.transaction() as session:
        mo = MoMessage(channel="sim-smpp", msisdn=msisdn, service_number="10086", text="1",
                       coding=8, parts=1, parts_expected=1, complete=True, undecodable=False,
                       received_at=at, dedup_key=f"test:{next(_keys)}")  # fmt: skip
        session.add(mo)
        session.flush()
        session.add(MoOutcome(mo_id=mo.id, outcome="handled", source="journey",
                              source_id=source_id, handled_at=at))  # fmt: skip


def order(store, msisdn: str, *, at: datetime, state: str = "placed") -> None:
    with store.transaction() as session:
        session.add(HallOrder(request_key=f"r{next(_keys)}", msisdn=msisdn, service_number="10086",
                              product_id="LL10", list_fee_fen=1000, price_fen=1000, state=state,
                              created_at=at, updated_at=at))  # fmt: skip


def rows(store, model, *where):
    with store.transaction() as session:
        return list(session.scalars(select(model).where(*where)))


def enrolment(store, msisdn: str) -> JourneyEnrolment:
    (row,) = rows(store, JourneyEnrolment, JourneyEnrolment.msisdn == msisdn)
    return row


def events(store, msisdn: str) -> list[tuple[str, str]]:
    row = enrolment(store, msisdn)
    return [(e.step, e.kind) for e in sorted(rows(store, JourneyEvent, JourneyEvent.enrolment_id == row.id),
                                             key=lambda e: e.id)]  # fmt: skip


def sent_to(store, msisdn: str) -> list[str]:
    return [m.idempotency_key.rsplit(":", 1)[1] for m in rows(store, Message, Message.msisdn == msisdn)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_three_step_journey_goes_down_each_branch(backend, tmp_path, request) -> None:
    url = f"sqlite:///{tmp_path / 'jx.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = seeded(url)
    try:
        flow = journey(tmp_path)
        (replier, buyer, silent), (held,) = numbers(flow, treated=3, held=1)
        # Given four subscribers enrolled at T0 (names carried as template variables)
        candidates = pa.table({"msisdn": [replier, buyer, silent, held],
                               "name": ["王先生", "李女士", "张先生", "赵女士"]})  # fmt: skip
        made = enrol(store, flow, candidates, entry_key="2026-10-08", now=T0)
        assert (made.enrolled, made.holdout, made.already) == (4, 1, 0)
        # When the journey advances at T0, Then the treated get the offer and wait 3 days
        counts = advance(store, [flow], now=T0)
        assert (counts["sent"], counts["held"]) == (3, 1)
        assert sent_to(store, replier) == ["offer"] and sent_to(store, held) == []
        assert enrolment(store, silent).step == "pause" and enrolment(store, silent).next_at == T0 + 3 * DAY
        (offer,) = rows(store, Message, Message.msisdn == replier)
        assert (offer.source, offer.source_id) == ("journey", "care_nudge:offer")
        assert "王先生" in offer.text
        # Given a reply, two placed orders (one by the hold-out member) and a failed one
        reply(store, replier, at=T0 + DAY)
        order(store, buyer, at=T0 + DAY)
        order(store, held, at=T0 + 2 * DAY)
        order(store, silent, at=T0 + DAY, state="failed")
        # Then nothing moves before the wait ends
        assert advance(store, [flow], now=T0 + 2 * DAY) == {}
        # When the wait ends, Then each goes down its branch at once
        counts = advance(store, [flow], now=T0 + 3 * DAY)
        assert events(store, replier) == [("offer", "sent"), ("check", "replied"), ("thanks", "sent")]
        assert sent_to(store, replier) == ["offer", "thanks"]
        assert events(store, buyer) == [("offer", "sent"), ("check", "ordered"), ("won", "exit")]
        assert events(store, held) == [("offer", "held"), ("check", "ordered"), ("won", "exit")]
        assert (enrolment(store, buyer).state, enrolment(store, buyer).outcome) == ("done", "converted")
        assert (enrolment(store, replier).state, enrolment(store, replier).outcome) == ("done", "completed")
        # And the silent one waits on in the branch until its 'none' window (4 days) ends
        assert enrolment(store, silent).step == "check" and enrolment(store, silent).state == "active"
        assert advance(store, [flow], now=T0 + 3 * DAY + timedelta(hours=2))["none"] == 0
        counts = advance(store, [flow], now=T0 + 4 * DAY)
        assert counts["none"] == 1 and events(store, silent)[-2:] == [("check", "none"), ("lost", "exit")]
        assert (enrolment(store, silent).state, enrolment(store, silent).outcome) == ("done", "no_response")
        # And the status compares the groups: 1 of 3 treated ordered, 1 of 1 held out
        status = journey_status(store, "care_nudge")
        assert (status.treated.enrolled, status.treated.converted) == (3, 1)
        assert (status.holdout.enrolled, status.holdout.converted) == (1, 1)
        assert ("won", "done", "converted", 2) in status.positions
        assert journey_status(store, "care_nudge", goal="replied").treated.converted == 1
        # And enrolling the same numbers for the same day again adds nobody
        assert enrol(store, flow, [replier, "12345"], entry_key="2026-10-08", now=T0).already == 1
    finally:
        store.dispose()


def test_a_crash_between_sending_and_recording_is_resumed_without_sending_twice(store, tmp_path,
                                                                                  monkeypatch) -> None:
    flow = journey(tmp_path)
    treated, _ = numbers(flow, treated=5, held=0)
    enrol(store, flow, pa.table({"msisdn": treated, "name": ["客户"] * 5}), entry_key="d", now=T0)

    # Given a process that dies after the batch's messages commit, before its events do
    class Killed(BaseException):
        pass

    def dying(*args, **kwargs):
        raise Killed()

    monkeypatch.setattr(engine, "_record", dying)
    with pytest.raises(Killed):
        advance(store, [flow], now=T0, batch=2)
    monkeypatch.undo()
    assert len(rows(store, Message)) == 2 and rows(store, JourneyEvent) == []
    # When a fresh process (the journey read again, a new delivery context) advances
    again = journey(tmp_path)
    counts = advance(store, [again], now=T0 + timedelta(minutes=5), batch=2)
    # Then every subscriber got the offer exactly once and it is recorded once
    assert counts["sent"] == 5 and len(rows(store, Message)) == 5
    sent = rows(store, JourneyEvent, JourneyEvent.kind == "sent")
    assert len(sent) == 5 and {e.message_id for e in sent} == {m.id for m in rows(store, Message)}
    assert sorted(e.detail for e in sent) == ["duplicate"] * 2 + ["queued"] * 3
    assert {enrolment(store, n).step for n in treated} == {"pause"}


def test_exit_conditions_and_a_bad_variable_end_only_their_enrolment(store, tmp_path) -> None:
    flow = journey(tmp_path, JOURNEY.replace("holdout: 0.3", "holdout: 0\nexit_on: [ordered]"))
    buyer, nameless, fine = numbers(flow, treated=3, held=0)[0]
    table = pa.table({"msisdn": [buyer, nameless, fine], "name": ["王先生", None, "张先生"]})
    enrol(store, flow, table, entry_key="d", now=T0)
    # Given the buyer ordered before the first step ran
    order(store, buyer, at=T0)
    counts = advance(store, [flow], now=T0 + timedelta(minutes=1))
    # Then the buyer left at once, the one without a name failed alone, the third was sent
    assert (enrolment(store, buyer).state, enrolment(store, buyer).outcome) == ("exited", "ordered")
    assert (enrolment(store, nameless).state, enrolment(store, nameless).outcome) == ("exited", "failed")
    (failed,) = rows(store, JourneyEvent, JourneyEvent.kind == "failed")
    assert "missing variable 'name'" in failed.detail
    assert counts["sent"] == 1 and sent_to(store, fine) == ["offer"] and sent_to(store, buyer) == []


def test_an_archived_template_holds_the_step_instead_of_failing_it(store, tmp_path) -> None:
    flow = journey(tmp_path, JOURNEY.replace("holdout: 0.3", "holdout: 0"))
    (one,) = numbers(flow, treated=1, held=0)[0]
    enrol(store, flow, pa.table({"msisdn": [one], "name": ["王先生"]}), entry_key="d", now=T0)
    with store.transaction() as session:
        (template,) = catalog.list_templates(session, code="journey.nudge")
        catalog.archive_template(session, template_id=template.id)
    counts = advance(store, [flow], now=T0)
    assert counts == {"blocked": 1} and enrolment(store, one).next_at == T0 + engine.BLOCKED_RETRY
    assert enrolment(store, one).state == "active" and sent_to(store, one) == []


def test_holdout_is_a_stable_share_per_journey() -> None:
    pool = [f"+86138{n:08d}" for n in range(4000)]
    held = [n for n in pool if in_holdout(n, "a", 0.2)]
    assert 0.17 < len(held) / len(pool) < 0.23
    assert held == [n for n in pool if in_holdout(n, "a", 0.2)]  # the same on every run
    assert held != [n for n in pool if in_holdout(n, "b", 0.2)]  # another journey, other groups
    assert not any(in_holdout(n, "a", 0.0) for n in pool)


def test_the_flow_commands_validate_enrol_advance_and_report(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from jingxin.cli import app

    # Given a configured store with the templates, a journey directory and an audience file
    seeded(f"sqlite:///{tmp_path / 'jx.db'}").dispose()
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "care.yaml").write_text(JOURNEY.replace("unused.csv", "../people.csv"), encoding="utf-8")
    (tmp_path / "people.csv").write_text("msisdn,name\n13912340001,王先生\n+8613912340002,李女士\n"
                                         "12345,无效\n", encoding="utf-8")  # fmt: skip
    config = tmp_path / "jingxin.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "jx.db"}"\n'
                      f'[journeys]\njourneys_dir = "{folder}"\n', encoding="utf-8")  # fmt: skip
    monkeypatch.setenv("JINGXIN_CONFIG", str(config))
    run = CliRunner().invoke
    # Then it validates, and a broken copy is refused with its line
    ok = run(app, ["flow", "validate", str(folder / "care.yaml")])
    assert ok.exit_code == 0 and "journey care_nudge: ok (6 steps" in ok.output, ok.output
    (tmp_path / "bad.yaml").write_text(JOURNEY.replace("type: wait", "type: pause"), encoding="utf-8")
    bad = run(app, ["flow", "validate", "--offline", str(tmp_path / "bad.yaml")])
    assert bad.exit_code == 1 and "bad.yaml:7: steps[1].type: unknown step type 'pause'" in bad.output
    # When the audience is enrolled (its own entry) and the journeys advance
    enrolled = run(app, ["flow", "enrol", str(folder / "care.yaml"), "--date", "2026-10-08",
                         "--now", "2026-10-08T10:00:00"])  # fmt: skip
    assert enrolled.exit_code == 0, enrolled.output
    assert "3 candidates, 2 enrolled" in enrolled.output and "invalid_msisdn 1" in enrolled.output
    advanced = run(app, ["flow", "advance", "--now", "2026-10-08T10:00:00"])
    assert advanced.exit_code == 0 and "1 journeys:" in advanced.output, advanced.output
    # Then the status shows them waiting in the pause, by group
    status = run(app, ["flow", "status", "care_nudge", "--json"])
    assert status.exit_code == 0, status.output
    shown = json.loads(status.output)
    assert shown["positions"] == [{"step": "pause", "state": "active", "outcome": None, "n": 2}]
    assert shown["treated"]["enrolled"] + shown["holdout"]["enrolled"] == 2 and shown["goal"] == "ordered"
