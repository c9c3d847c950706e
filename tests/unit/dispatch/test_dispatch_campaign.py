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
    # No hold-out: these tests count what a campaign queues (experiments have their own).
    return CampaignSpec(name="t", category=category, tariff=0.1,
                        template={"body": body, "variables": {"name": "str"}},
                        audience={"path": tmp_path / "a.csv"},
                        experiment={"holdout": "none"})  # fmt: skip


def test_state_in_the_store_rejects_with_its_reason(store, tmp_path) -> None:
    # Given one opted-out number, one marked invalid, and two clean ones
    with store.transaction() as s:
        record_opt_out(s, msisdn="+8613900000001", source="sms_reply",
                       category="notification", at=NOON - timedelta(days=1))  # fmt: skip
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
    second = run_campaign(store, spec=spec, now=NOON + timedelta(hours=1), again=True)
    # Then both are rejected by the daily cap, because the first was counted in the ledger
    assert second.accepted == 0
    assert dict(second.rejected) == {"cap_day": 2}


def test_campaign_and_policy_batch_agree_on_when_an_opt_out_applies(store, tmp_path) -> None:
    from jingxin.data.store.tenants import ensure_default_tenant
    import pyarrow as pa

    from jingxin.dispatch.admission import TS, candidate_table
    from jingxin.policy.batch import decide_batch
    from jingxin.data.store.policy_state import load_batch, load_config

    # Given opt-outs recorded an hour before and an hour after the decision time, and a
    # third number with none
    before, after, clean = "+8613900000001", "+8613900000002", "+8613900000003"
    with store.transaction() as s:
        for msisdn, at in ((before, NOON - timedelta(hours=1)), (after, NOON + timedelta(hours=1))):
            record_opt_out(s, msisdn=msisdn, source="sms_reply", category="notification", at=at)
    spec = spec_for(tmp_path, [f"{m[3:]},n" for m in (before, after, clean)])
    # When `policy batch`'s path (state_store + decide_batch) decides the same candidates
    # as of the same instant, and then the campaign runs
    with store.transaction() as s:
        ensure_default_tenant(s)  # as `jingxin policy batch` does
        config = load_config(s)
        numbers = [before, after, clean]
        candidates = candidate_table(
            msisdns=pa.array(numbers), tenant_id=pa.array([spec.tenant] * 3),
            category=pa.array([spec.category] * 3), source=pa.array(["campaign"] * 3),
            campaign_id=pa.array([1] * 3, pa.int64()), wanted_at=pa.nulls(3, TS),
            keys=pa.array([f"campaign:1:{m}" for m in numbers]))  # fmt: skip
        table, ledger = load_batch(s, candidates=candidates, now=NOON)
    batch = decide_batch(table, now=NOON, config=config, ledger=ledger)
    summary = run_campaign(store, spec=spec, now=NOON)
    # Then only the earlier opt-out applies, for both
    assert batch.column("outcome").to_pylist() == ["reject", "send", "send"]
    assert batch.column("reasons").to_pylist()[0] == "opted_out"
    assert (summary.accepted, dict(summary.rejected)) == (2, {"opted_out": 1})
    assert sorted(queued_numbers(store)) == [after, clean]


def test_the_default_tenant_is_the_operator(store, tmp_path) -> None:
    from sqlalchemy import select

    from jingxin.data.store.models import DEFAULT_TENANT_ID, Campaign, Message, Tenant

    # Given a spec that names no tenant, in an empty store
    spec = spec_for(tmp_path, ["13900000000,a"])
    assert spec.tenant == DEFAULT_TENANT_ID == "operator"
    # When it runs, the operator's tenant is created and carried by campaign and messages
    run_campaign(store, spec=spec, now=NOON)
    with store.sessions() as s:
        assert s.scalars(select(Tenant.id)).all() == ["operator"]
        assert s.scalars(select(Campaign.tenant_id)).all() == ["operator"]
        assert s.scalars(select(Message.tenant_id)).all() == ["operator"]


def test_a_tenant_that_does_not_exist_is_a_spec_error(store, tmp_path) -> None:
    # "default" is not special: like any other id, it must exist
    spec = spec_for(tmp_path, ["13900000000,a"])
    spec.tenant = "default"
    with pytest.raises(SpecError, match=r"tenant: unknown tenant 'default'"):
        run_campaign(store, spec=spec, now=NOON)


def queued_numbers(store) -> list[str]:
    from sqlalchemy import select

    from jingxin.data.store.models import Message

    with store.sessions() as s:
        return list(s.scalars(select(Message.msisdn)))


def test_a_number_repeated_in_a_later_chunk_is_a_duplicate(store, tmp_path, monkeypatch) -> None:
    from jingxin.dispatch import delivery_table

    # Given chunks of two rows, and the first number again in the second chunk
    monkeypatch.setattr(delivery_table, "CHUNK", 2)
    spec = spec_for(tmp_path, ["13900000000,a", "13900000001,b", "13900000000,c"])
    # When the campaign runs
    summary = run_campaign(store, spec=spec, now=NOON)
    # Then the repeat is rejected as a duplicate (its key is in the ledger), sent once
    assert (summary.accepted, dict(summary.rejected)) == (2, {"duplicate": 1})
    assert sorted(queued_numbers(store)) == ["+8613900000000", "+8613900000001"]


def _approved(store, code: str, body: str, *, approve: bool = True) -> None:
    from jingxin.content import catalog
    from jingxin.content.library import TemplateDocument
    from jingxin.data.store.tenants import ensure_default_tenant

    with store.transaction() as s:
        ensure_default_tenant(s)
        doc = TemplateDocument(code=code, category="notification", body=body,
                               variables={"name": "str"})  # fmt: skip
        catalog.seed_library(s, documents=[doc], approve_as="reviewer" if approve else None,
                             reviewer=None)  # fmt: skip


def test_a_catalogue_template_is_sent_only_once_approved(store, tmp_path) -> None:
    from sqlalchemy import select

    from jingxin.data.store.models import Message
    from jingxin.errors import TemplateError

    # Given an approved catalogue template and an audience file
    _approved(store, "bill.ready", "{{ name }}您好，本月账单已出。")
    spec = spec_for(tmp_path, ["13900000000,王"])
    spec.template = spec.template.model_validate({"code": "bill.ready"})
    # When the campaign names it by code
    summary = run_campaign(store, spec=spec, now=NOON)
    # Then its approved text (with the tenant's signature) is queued
    assert summary.accepted == 1
    with store.sessions() as s:
        assert s.scalar(select(Message.text)).startswith("【中国移动】王您好，本月账单已出。")
    # And a code with no approved version is refused before anything is queued
    _approved(store, "bill.draft", "{{ name }}您好。", approve=False)
    spec.template = spec.template.model_validate({"code": "bill.draft"})
    with pytest.raises(TemplateError, match="no approved version"):
        run_campaign(store, spec=spec, now=NOON)


def test_an_inline_body_must_pass_the_content_review(store, tmp_path) -> None:
    # Given an inline body with a public URL shortener and a fraud phrase
    spec = spec_for(tmp_path, ["13900000000,王"], body="{{ name }}，低息贷款秒批 http://bit.ly/x")
    # When the campaign runs, Then the review blocks it and nothing is queued
    with pytest.raises(SpecError, match="blocked by the content review"):
        run_campaign(store, spec=spec, now=NOON)
    assert states(store) == {}


def test_a_spec_gives_either_a_code_or_a_body() -> None:
    with pytest.raises(ValueError, match="either code"):
        CampaignSpec(name="t", template={"code": "x", "body": "y"}, audience={"path": "a.csv"})
    with pytest.raises(ValueError, match="either code"):
        CampaignSpec(name="t", template={}, audience={"path": "a.csv"})


def test_the_policy_settings_apply_to_campaigns_as_to_policy_batch(store, tmp_path) -> None:
    # Given [policy] settings whose quiet hours cover noon in Shanghai
    spec = spec_for(tmp_path, ["13900000000,a"], category="marketing")
    defaults = {"quiet_start": "11:00", "quiet_end": "13:00", "default_timezone": "Asia/Shanghai"}
    # When a marketing campaign runs at 12:00 with those settings
    summary = run_campaign(store, spec=spec, now=NOON, policy_defaults=defaults)
    # Then it is deferred, as `jingxin policy batch` would defer it
    assert (summary.accepted, summary.deferred) == (0, 1)


def test_each_distinct_tuple_of_values_is_rendered_once(store, tmp_path, monkeypatch) -> None:
    from jingxin.content import templates

    calls: list[dict] = []
    real = templates.render

    def counting(compiled, values, **kwargs):
        calls.append(dict(values))
        return real(compiled, values, **kwargs)

    monkeypatch.setattr(templates, "render", counting)
    # Given six rows with three distinct names, one of which does not render as an int
    spec = spec_for(tmp_path, [f"1390000000{i},{v}" for i, v in enumerate("112x2x")],
                    body="您的积分：{{ name }}")  # fmt: skip
    spec.template.variables = {"name": "int"}
    # When the campaign runs
    summary = run_campaign(store, spec=spec, now=NOON)
    # Then each distinct value was rendered once, and every row got its own outcome
    assert sorted(c["name"] for c in calls) == ["1", "2", "x"]
    assert (summary.accepted, dict(summary.rejected)) == (4, {"render_error": 2})
    assert summary.parts == 4 and round(summary.cost, 2) == 0.4


def test_start_at_moves_the_schedule_expiry_and_ledger_day(store, tmp_path) -> None:
    from sqlalchemy import select

    from jingxin.data.store.models import LedgerEntry, Message

    # Given a spec that starts two days after the decision time, valid for 6 hours
    spec = spec_for(tmp_path, ["13900000000,a"])
    spec.start_at = NOON + timedelta(days=2)
    spec.validity_hours = 6
    # When the campaign runs
    summary = run_campaign(store, spec=spec, now=NOON)
    # Then the message waits for the start, expires 6 hours later, and the ledger counts it
    # on the start's local day; the summary says where the time went
    with store.sessions() as s:
        scheduled, expires = s.execute(select(Message.scheduled_at, Message.expires_at)).one()
        day = s.scalar(select(LedgerEntry.local_date))
    assert (scheduled, expires - scheduled) == (spec.start_at, timedelta(hours=6))
    assert day == (NOON + timedelta(days=2)).date()
    assert {"render", "state", "decide", "enqueue", "ledger"} <= set(summary.stages)


def test_an_enqueue_failure_in_the_writer_thread_stops_the_campaign(
    store, tmp_path, monkeypatch
) -> None:
    from jingxin.dispatch import delivery_table, outbox
    from jingxin.errors import StoreError

    # Given chunks of one row, and an outbox that fails on the second chunk
    monkeypatch.setattr(delivery_table, "CHUNK", 1)
    real, calls = outbox.enqueue_table, []

    def failing(store, *, table, now):
        calls.append(table.num_rows)
        if len(calls) == 2:
            raise StoreError("the outbox is gone")
        return real(store, table=table, now=now)

    monkeypatch.setattr(outbox, "enqueue_table", failing)
    spec = spec_for(tmp_path, [f"1390000000{i},n" for i in range(4)])
    # When the campaign runs, Then the writer's error reaches the caller, and no chunk
    # after the failed one was written
    with pytest.raises(StoreError, match="the outbox is gone"):
        run_campaign(store, spec=spec, now=NOON)
    assert calls == [1, 1]
    assert states(store) == {"queued": 1}
