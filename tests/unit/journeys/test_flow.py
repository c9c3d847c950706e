"""Journey files: a good one compiles; each bad one is refused with its file, line and field."""

from __future__ import annotations

from datetime import timedelta
from textwrap import dedent

import pytest

from jingxin.content import catalog
from jingxin.content.library import TemplateDocument
from jingxin.data.store.engine import open_store
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.journeys.flow import Branch, FlowError, Send, Wait, load_flow, load_flows, parse_flow

GOOD = dedent("""\
    name: renewal_nudge
    category: marketing
    entry: {trigger: renewal}
    holdout: 0.1
    exit_on: [ordered]
    steps:
      - {id: offer, type: send, template: journey.offer, variables: {offer: 返30元}}
      - {id: pause, type: wait, days: 3}
      - id: check
        type: branch
        on:
          - {event: ordered, within: {days: 3}, goto: won}
          - {event: replied, within: {days: 3}, goto: won}
          - {event: none, within: {days: 3}, goto: reminder}
        default: reminder
      - {id: reminder, type: send, template: journey.offer, next: lost}
      - {id: won, type: exit, outcome: converted}
      - {id: lost, type: exit, outcome: no_response}
    """)


def problems(text: str, **kwargs) -> list[str]:
    with pytest.raises(FlowError) as caught:
        parse_flow(text, source="j.yaml", **kwargs)
    return caught.value.problems


def test_a_good_journey_compiles_with_its_steps_and_order() -> None:
    flow = parse_flow(GOOD, source="j.yaml")
    assert (flow.name, flow.entry.trigger, flow.holdout, flow.exit_on) == (
        "renewal_nudge", "renewal", 0.1, ("ordered",))
    offer, pause, check = flow.steps[:3]
    assert isinstance(offer, Send) and offer.variables == {"offer": "返30元"} and offer.line == 7
    assert isinstance(pause, Wait) and pause.duration == timedelta(days=3)
    assert isinstance(check, Branch) and [r.event for r in check.rules] == ["ordered", "replied", "none"]
    assert check.line == 9 and check.rules[1].line == 13
    assert flow.after(offer) == "pause" and flow.after(flow.step("reminder")) == "lost"
    assert flow.run_name == "flow:renewal_nudge"


@pytest.mark.parametrize(("change", "expected"), [
    # an unknown step type: the line of its type
    (("type: wait, days: 3", "type: sleep, days: 3"),
     "j.yaml:8: steps[1].type: unknown step type 'sleep' (use send, wait, branch, exit)"),
    # a goto to a step that is not there
    ("goto: reminder}\n    default", "j.yaml:14: steps[2].on[2].goto: goes to step 'remindr'"),
    # a field the step does not have
    (("next: lost}", "nxt: lost}"), "j.yaml:16: steps[3].nxt: unknown field"),
    # a wait of nothing
    (("days: 3}\n  - id: check", "days: 0}\n  - id: check"),
     "j.yaml:8: steps[1]: give days or hours, more than 0"),
    # a hold-out share above one half
    (("holdout: 0.1", "holdout: 0.6"), "j.yaml:4: holdout: 0.6 is no hold-out share: give 0 to 0.5"),
    # an unknown branch event
    (("event: replied", "event: clicked"), "j.yaml:13: steps[2].on[1].event: Input should be"),
    # an unknown trigger
    (("trigger: renewal", "trigger: payday"), "j.yaml:3: entry.trigger: unknown trigger 'payday'"),
    # a journey named like a trigger (their replies would mix)
    (("name: renewal_nudge", "name: birthday"), "j.yaml:1: name: 'birthday' is the name of a daily-scan"),
    # a key given twice
    (("category: marketing", "category: marketing\ncategory: otp"), "j.yaml:3: category: given twice"),
])
def test_each_bad_journey_names_file_line_and_field(change, expected) -> None:
    if isinstance(change, str):  # the goto case: "reminder" -> "remindr" in one place
        text = GOOD.replace(change, change.replace("reminder", "remindr"))
    else:
        text = GOOD.replace(*change)
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_a_loop_without_a_wait_is_refused_and_one_with_a_wait_is_not() -> None:
    # Given a branch whose default goes back to the send before it (no wait between)
    looping = dedent("""\
        name: pester
        entry: {audience: a.csv}
        steps:
          - {id: offer, type: send, template: t}
          - id: check
            type: branch
            on: [{event: ordered, within: {hours: 1}, goto: won}]
            default: offer
          - {id: won, type: exit, outcome: converted}
        """)
    (found,) = [p for p in problems(looping) if "loop" in p]
    assert found == ("j.yaml:5: steps[1]: the loop offer -> check -> offer has no wait step: "
                     "it would send without pause (put a wait in it)")
    # Given the same loop through a wait, Then it compiles (the audience file exists)
    waiting = looping.replace("default: offer", "default: pause") + \
        "  - {id: pause, type: wait, days: 7, next: offer}\n"
    with pytest.raises(FlowError) as caught:  # only the missing audience file is left
        parse_flow(waiting, source="j.yaml")
    assert [p.split(": ", 2)[1] for p in caught.value.problems] == ["entry.audience"]


def test_yaml_errors_and_missing_fields_have_lines_too(tmp_path) -> None:
    assert problems("name: [x\n")[0].startswith("j.yaml:2: (file): not valid YAML")
    found = problems("name: x\nentry: {trigger: birthday}\n")
    assert found == ["j.yaml:1: steps: Field required"]
    found = problems("name: x\nentry: {trigger: birthday}\nsteps:\n  - {id: a, template: t}\n")
    assert found == ["j.yaml:4: steps[0].type: missing step type (use send, wait, branch, exit)"]


def test_templates_must_be_approved_for_the_journeys_category(tmp_path, migrated_sqlite) -> None:
    # Given a store where journey.offer is approved as marketing and journey.draft is a draft
    store = open_store(migrated_sqlite(tmp_path / "jx.db"))
    try:
        with store.transaction() as session:
            ensure_default_tenant(session)
            offer = catalog.add_template(session, document=TemplateDocument(
                code="journey.offer", category="marketing", body="优惠：{{ offer }}",
                variables={"offer": "str"}))
            catalog.submit_template(session, template_id=offer.id)
            catalog.approve_template(session, template_id=offer.id, reviewer="r")
            catalog.add_template(session, document=TemplateDocument(
                code="journey.draft", category="marketing", body="草稿"))
        # Then the good journey passes against it
        assert parse_flow(GOOD, source="j.yaml", store=store).name == "renewal_nudge"
        # And a draft template, or sending marketing as a notification, is refused at its line
        found = problems(GOOD.replace("template: journey.offer, next", "template: journey.draft, next"),
                         store=store)
        assert found == ["j.yaml:16: steps[3].template: template operator/journey.draft "
                         "has no approved version"]
        found = problems(GOOD.replace("category: marketing", "category: notification"), store=store)
        assert len(found) == 2 and "approved as marketing; it cannot be sent as notification" in found[0]
    finally:
        store.dispose()


def test_a_directory_of_journeys_reports_every_file_and_refuses_one_name_twice(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.yml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path)
    assert caught.value.problems == [f"{tmp_path / 'b.yml'}:1: name: journey 'renewal_nudge' "
                                     f"is also defined in {tmp_path / 'a.yaml'}"]
    (tmp_path / "b.yml").unlink()
    assert [f.name for f in load_flows(tmp_path)] == ["renewal_nudge"]
    assert load_flow(tmp_path / "a.yaml").path == str(tmp_path / "a.yaml")
