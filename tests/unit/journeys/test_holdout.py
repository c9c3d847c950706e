"""A journey's hold-out: the default ([analytics] holdout) for marketing journeys only,
an explicit ``holdout:`` winning, more than half named by file and line; enrolments'
arms recorded in experiment_assignments (journey:<name>) once, the same side on every
entry; treated sends carry arm ``main``, the held-out get nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from textwrap import dedent

import pytest
from sqlalchemy import select

from jingxin.analytics.assign import assign_one
from jingxin.content import catalog
from jingxin.content.library import TemplateDocument
from jingxin.data.store.engine import open_store
from jingxin.data.store.models import JourneyEnrolment, Message
from jingxin.data.store.models.analytics import ExperimentAssignment
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.journeys.engine import advance, enrol, in_holdout
from jingxin.journeys.flow import FlowError, parse_flow

T0 = datetime(2026, 10, 8, 2, 0, tzinfo=UTC)
NUMBERS = [f"+861391234{n:04d}" for n in range(60)]


def flow(*, category: str = "marketing", holdout: str | None = None):
    text = dedent(f"""\
        name: greet
        category: {category}
        entry: {{trigger: birthday}}
        {f"holdout: {holdout}" if holdout is not None else ""}
        steps:
          - {{id: hello, type: send, template: journey.hello}}
        """)
    return parse_flow(text, source="greet.yaml")


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    with opened.transaction() as session:
        ensure_default_tenant(session)
        made = catalog.add_template(session, document=TemplateDocument(
            code="journey.hello", category="marketing", body="生日快乐！", variables={}))
        catalog.submit_template(session, template_id=made.id)
        catalog.approve_template(session, template_id=made.id, reviewer="r")
    yield opened
    opened.dispose()


def assignments(store) -> dict[str, tuple[str, bool, str]]:
    A = ExperimentAssignment
    with store.sessions() as session:
        return {m: (arm, held, experiment) for m, arm, held, experiment in session.execute(
            select(A.msisdn, A.arm, A.holdout, A.experiment))}  # fmt: skip


@pytest.mark.parametrize(("category", "written", "share"), [
    ("marketing", None, 0.05),  # the default: [analytics] holdout
    ("notification", None, 0.0),  # a service notice is not withheld by default
    ("otp", None, 0.0),
    ("marketing", "none", 0.0),  # explicit: no hold-out
    ("marketing", "off", 0.0),
    ("notification", "10%", 0.1),  # explicit wins over the category
    ("marketing", "0.5", 0.5),
])  # fmt: skip
def test_the_share_is_explicit_or_the_default_for_marketing(category, written, share) -> None:
    made = flow(category=category, holdout=written)
    assert made.holdout_share(0.05) == share
    assert made.experiment == "journey:greet"


@pytest.mark.parametrize(("written", "why"), [
    ("1", ("greet.yaml:4: holdout: 1 is no hold-out share: give 0 to 0.5 (50%), or none - a "
           "hold-out of 100% would send nothing")),
    ("60%", "greet.yaml:4: holdout: 60% is no hold-out share"),
    ("many", "greet.yaml:4: holdout: 'many' is no share (write 0.05, 5% or none)"),
])  # fmt: skip
def test_a_share_above_half_names_the_flow_file_and_line(written, why) -> None:
    with pytest.raises(FlowError) as caught:
        flow(holdout=written)
    assert caught.value.problems[0].startswith(why)


def test_enrolments_are_assigned_once_and_the_treated_are_sent_with_arm_main(store) -> None:
    greet = flow(holdout="0.3")
    # When 60 numbers enrol (one given twice, in another form)
    made = enrol(store, greet, [*NUMBERS, "13912340000"], entry_key="2026-10-08", now=T0)
    held = {n for n in NUMBERS if assign_one(n, experiment="journey:greet",
                                              holdout=0.3) == "holdout"}  # fmt: skip
    assert (made.enrolled, made.holdout) == (60, len(held)) and 8 <= len(held) <= 30
    assert held == {n for n in NUMBERS if in_holdout(n, "greet", 0.3)}
    # Then every enrolment's arm is recorded, the hold-out flagged
    recorded = assignments(store)
    assert set(recorded) == set(NUMBERS)
    assert {n for n, (arm, flag, _) in recorded.items() if flag and arm == "holdout"} == held
    assert {recorded[n] for n in set(NUMBERS) - held} == {("main", False, "journey:greet")}
    with store.sessions() as session:
        flags = dict(session.execute(select(JourneyEnrolment.msisdn, JourneyEnrolment.holdout)).all())
    assert {n for n, flag in flags.items() if flag} == held
    # And another day's entry puts everyone on the same side, recording nothing new
    again = enrol(store, greet, NUMBERS, entry_key="2026-10-09", now=T0)
    assert again.holdout == len(held) and assignments(store) == recorded
    # When the journey advances, only the treated are sent, with arm main
    advance(store, [greet], now=T0)
    with store.sessions() as session:
        sent = dict(session.execute(select(Message.msisdn, Message.arm)).all())
    assert set(sent) == set(NUMBERS) - held and set(sent.values()) == {"main"}


def test_the_default_share_is_the_caller_s_and_none_records_nothing(store) -> None:
    # A marketing journey with no holdout of its own takes [analytics] holdout as given
    made = enrol(store, flow(), NUMBERS, entry_key="d1", now=T0, default_holdout=0.5)
    assert made.holdout == sum(assign_one(n, experiment="journey:greet", holdout=0.5)
                               == "holdout" for n in NUMBERS)  # fmt: skip
    assert 15 <= made.holdout <= 45
    # A journey without a hold-out is no experiment: nothing recorded, no arm on its sends
    plain = parse_flow(dedent("""\
        name: plain
        entry: {trigger: birthday}
        holdout: none
        steps:
          - {id: hello, type: send, template: journey.hello}
        """), source="plain.yaml")  # fmt: skip
    assert enrol(store, plain, NUMBERS[:5], entry_key="d1", now=T0).holdout == 0
    assert not any(e == "journey:plain" for _, _, e in assignments(store).values())
    advance(store, [plain], now=T0)
    with store.sessions() as session:
        arms = session.scalars(select(Message.arm).where(Message.source_id == "plain:hello"))
        assert list(arms) == [None] * 5
