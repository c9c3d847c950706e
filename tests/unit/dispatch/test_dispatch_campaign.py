"""The campaign runner: audience → render → policy → outbox, and its bad inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dispatch_fakes import states

from jingxin.data.store.contact import record_opt_out, update_subscriber_state
from jingxin.dispatch.campaign import CampaignSpec, load_spec, run_campaign
from jingxin.errors import ImportFileError, SpecError

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: no quiet hours


def spec_for(tmp_path, rows, *, body="{{ name }}您好，账单已出。", category="notification",
             header="msisdn,name") -> CampaignSpec:  # fmt: skip
    (tmp_path / "a.csv").write_text(
        header + "\n" + "".join(f"{r}\n" for r in rows), "utf-8"
    )
    return CampaignSpec(name="t", category=category, tariff=0.1,
                        template={"body": body, "variables": {"name": "str"}},
                        audience={"path": tmp_path / "a.csv"})  # fmt: skip


def test_state_in_the_store_rejects_with_its_reason(store, tmp_path) -> None:
    # Given one opted-out number, one marked invalid, and two clean ones
    with store.transaction() as s:
        record_opt_out(
            s, msisdn="+8613900000001", source="sms_reply", category="notification"
        )
        update_subscriber_state(
            s, msisdn="+8613900000002", invalid_since=NOON - timedelta(days=1)
        )
    spec = spec_for(tmp_path, [f"1390000000{i},n{i}" for i in range(4)])
    # When the campaign runs
    summary = run_campaign(store, spec=spec, now=NOON)
    # Then the two with state are rejected by reason, two are queued with parts and cost
    assert summary.rejected == {"opted_out": 1, "invalid_number": 1}
    assert (summary.accepted, summary.parts, round(summary.cost, 2)) == (2, 2, 0.2)
    assert states(store) == {"queued": 2}


def test_marketing_in_quiet_hours_is_deferred_not_lost(store, tmp_path) -> None:
    from sqlalchemy import select

    from jingxin.data.store.models import Message

    # Given 23:00 in Shanghai (quiet hours 21:00-08:00)
    night = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    spec = spec_for(tmp_path, ["13900000000,a"], category="marketing")
    # When a marketing campaign runs
    summary = run_campaign(store, spec=spec, now=night)
    # Then the message is deferred (queued for 08:00 local, i.e. 00:00 UTC), not rejected
    assert (summary.accepted, summary.deferred, dict(summary.rejected)) == (0, 1, {})
    with store.sessions() as s:
        scheduled = s.scalar(select(Message.scheduled_at))
    assert scheduled == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def test_a_row_that_does_not_render_is_rejected_alone(store, tmp_path) -> None:
    # Given an int variable, and one row whose value is not a number
    spec = spec_for(
        tmp_path, ["13900000000,abc", "13900000001,42"], body="您的积分：{{ name }}"
    )
    spec.template.variables = {"name": "int"}
    # When the campaign runs, that row alone is rejected; the other is queued
    summary = run_campaign(store, spec=spec, now=NOON)
    assert (summary.rows, summary.accepted, dict(summary.rejected)) == (
        2,
        1,
        {"render_error": 1},
    )


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("name: x\n", r"template: Field required"),
    ("name: x\ntemplate: {body: hi}\naudience: {path: a.csv}\ncolour: red\n", r"colour: Extra"),
])  # fmt: skip
def test_a_bad_spec_names_the_file_and_field(tmp_path, yaml_text, message) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text, "utf-8")
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_an_audience_without_the_msisdn_column_is_refused_before_writing(
    store, tmp_path
) -> None:
    spec = spec_for(tmp_path, ["13900000000,a"], header="phone,name")
    with pytest.raises(
        ImportFileError, match=r"a.csv: no column 'msisdn' \(columns: phone, name\)"
    ):
        run_campaign(store, spec=spec, now=NOON)
    from jingxin.data.store.models import Campaign

    with store.sessions() as s:
        assert s.query(Campaign).count() == 0


def test_a_second_marketing_campaign_the_same_day_hits_the_daily_cap(
    store, tmp_path
) -> None:
    # Given a marketing campaign accepted for two numbers (cap: one marketing SMS a day)
    spec = spec_for(tmp_path, ["13900000000,a", "13900000001,b"], category="marketing")
    first = run_campaign(store, spec=spec, now=NOON)
    assert first.accepted == 2
    # When a second marketing campaign targets the same numbers an hour later
    second = run_campaign(store, spec=spec, now=NOON + timedelta(hours=1))
    # Then both are rejected by the daily cap, because the first was counted in the ledger
    assert second.accepted == 0
    assert dict(second.rejected) == {"cap_day": 2}
