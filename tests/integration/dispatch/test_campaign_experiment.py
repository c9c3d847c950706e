"""Experiments on campaigns: the hold-out and the variants' arms chosen before the delivery
entry, recorded for everyone, a test share sent first and the winner promoted to the
rest, send times per arm, and the spec's bad input - on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from jingxin.analytics.assign import HOLDOUT, assign, record_assignments
from jingxin.data.store import open_store
from jingxin.data.store.models import Campaign, ExperimentAssignment, LinkClick, Message
from jingxin.dispatch.campaign import campaign_status, control, load_spec, run_campaign
from jingxin.dispatch.campaign_promote import PromotionDuties, due_for_promotion, promote
from jingxin.dispatch.deliver import DeliveryContext
from jingxin.errors import InputError, SpecError

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: no quiet hours
NUMBERS = [f"+86139{i:08d}" for i in range(1000)]
VARIANTS = """\
experiment:
  holdout: {holdout}
  variants:
    - {{name: A, template: {{code: mkt.a}}, weight: 1}}
    - {{name: B, template: {{code: mkt.b}}, weight: 1}}
"""


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


@pytest.fixture
def sqlite_store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    yield opened
    opened.dispose()


def approve(store, code: str, body: str, variables=None) -> None:
    from jingxin.content import catalog
    from jingxin.content.library import TemplateDocument
    from jingxin.data.store.tenants import ensure_default_tenant

    with store.transaction() as s:
        ensure_default_tenant(s)
        doc = TemplateDocument(code=code, category="marketing", body=body,
                               variables=variables or {"name": "str"})  # fmt: skip
        catalog.seed_library(s, documents=[doc], approve_as="reviewer", reviewer=None)


def write_spec(tmp_path, body: str, numbers=NUMBERS, name: str = "data-pack"):
    (tmp_path / "a.csv").write_text(
        "msisdn,name\n" + "".join(f"{n[3:]},王\n" for n in numbers), "utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(f"name: {name}\ncategory: marketing\naudience: {{path: a.csv}}\n{body}",
                    "utf-8")
    return path


def two_templates(store) -> None:
    approve(store, "mkt.a", "{{ name }}您好，A款流量包特惠。")
    approve(store, "mkt.b", "{{ name }}您好，B款流量包特惠。")


def assignments(store, experiment: str) -> dict[str, str]:
    with store.sessions() as s:
        return dict(s.execute(select(ExperimentAssignment.msisdn, ExperimentAssignment.arm)
                              .where(ExperimentAssignment.experiment == experiment)).all())


def messages(store, campaign_id: int) -> list[tuple[str, str, str]]:
    with store.sessions() as s:
        return [tuple(r) for r in s.execute(
            select(Message.msisdn, Message.arm, Message.text)
            .where(Message.campaign_id == campaign_id))]  # fmt: skip


def test_two_variants_and_a_hold_out(store, tmp_path) -> None:
    # Given two approved templates and a spec with two variants and a 10% hold-out
    two_templates(store)
    spec = load_spec(write_spec(tmp_path, VARIANTS.format(holdout=0.1)))
    # When the campaign runs
    summary = run_campaign(store, spec=spec, now=NOON)
    # Then every number is assigned - hold-out included - as assign() answers
    assigned = assignments(store, "campaign:1")
    expected = assign(NUMBERS, experiment="campaign:1", arms=[("A", 1), ("B", 1)], holdout=0.1)
    assert assigned == dict(zip(NUMBERS, expected.to_pylist(), strict=True))
    held = {n for n, arm in assigned.items() if arm == HOLDOUT}
    assert 60 <= len(held) <= 140 and summary.held_out == len(held)
    # And no message goes to the hold-out; every message carries its arm and that arm's template
    sent = messages(store, 1)
    assert len(sent) == summary.accepted == len(NUMBERS) - len(held)
    assert not held & {m for m, _, _ in sent}
    for msisdn, arm, text in sent:
        assert arm == assigned[msisdn] and f"{arm}款" in text
    # And the summary and the status count per arm
    per_arm = {a: sum(1 for v in assigned.values() if v == a) for a in "AB"}
    assert summary.arms == {a: {"assigned": n, "queued": n} for a, n in per_arm.items()}
    assert summary.as_dict()["held_out"] == len(held)
    status = campaign_status(store, campaign_id=1)
    assert (status["held_out"], status["arms"]) == (len(held), summary.arms)
    # When the spec runs again with again: a new campaign, a new experiment of its own
    run_campaign(store, spec=spec, now=NOON, again=True)
    # Then the first campaign's assignments are untouched, and recording them again adds none
    assert assignments(store, "campaign:1") == assigned
    assert len(assignments(store, "campaign:2")) == len(NUMBERS)
    assert record_assignments(store, experiment="campaign:1", tenant_id="operator",
                              msisdns=list(assigned), arms=list(assigned.values()),
                              at=NOON) == 0  # fmt: skip


def test_a_test_share_then_the_winner_goes_to_the_rest(store, tmp_path) -> None:
    # Given a campaign with two variants sending 30% of its audience first
    two_templates(store)
    numbers = NUMBERS[:400]
    body = VARIANTS.format(holdout="none") + "  test_share: 0.3\n  winner_metric: clicked\n"
    spec = load_spec(write_spec(tmp_path, body, numbers))
    summary = run_campaign(store, spec=spec, now=NOON)
    first = messages(store, 1)
    assert summary.waiting == len(numbers) - len(first) and 80 <= len(first) <= 160
    assert summary.held_out == 0 and len(assignments(store, "campaign:1")) == len(numbers)
    assert campaign_status(store, campaign_id=1)["status"] == "testing"
    context, later = DeliveryContext(), NOON + timedelta(days=1)
    # When promoted before anything was sent, Then it is refused and says why
    with pytest.raises(SpecError, match="no arm has been sent yet"):
        promote(store, campaign_id=1, context=context, now=later)
    # Given the test share sent, and one click in each arm
    ids = _send_all(store)
    by_arm = {arm: [i for i, a in ids if a == arm] for arm in "AB"}
    _click(store, [by_arm["A"][0], by_arm["B"][0]])
    # When promoted, Then it is refused: A is not significantly better than B
    with pytest.raises(SpecError, match=r"not significantly better .* --force"):
        promote(store, campaign_id=1, context=context, now=later)
    # Given every A message clicked
    _click(store, by_arm["A"][1:])
    # When promoted
    result = promote(store, campaign_id=1, context=context, now=later)
    # Then A wins, and the rest get A's template while keeping their own arm
    assert result.winner == "A" and result.p_value < 0.05
    assigned = assignments(store, "campaign:1")
    rest = [m for m in messages(store, 1) if m[0] not in {f[0] for f in first}]
    assert len(rest) == summary.waiting == result.summary.accepted
    assert {arm for _, arm, _ in rest} == {"A", "B"}
    assert all(arm == assigned[m] and "A款" in text for m, arm, text in rest)
    assert campaign_status(store, campaign_id=1)["status"] == "running"
    # When promoted again, Then nothing more is queued
    again = promote(store, campaign_id=1, context=context, now=later)
    assert "already promoted" in again.note and again.summary is None
    assert len(messages(store, 1)) == len(numbers)


def test_the_scheduler_promotes_when_the_test_phase_is_over(sqlite_store, tmp_path) -> None:
    # Given a campaign testing 30% of its audience for 24 hours, sent, one arm clicked more
    store = sqlite_store
    two_templates(store)
    numbers = NUMBERS[:300]
    body = (VARIANTS.format(holdout="none")
            + "  test_share: 0.3\n  promote_after_hours: 24\n")  # fmt: skip
    summary = run_campaign(store, spec=load_spec(write_spec(tmp_path, body, numbers)), now=NOON)
    ids = _send_all(store)
    _click(store, [i for i, arm in ids if arm == "A"][:3])
    with store.transaction() as s:
        s.execute(update(Campaign).values(started_at=NOON))

    class Settings:  # what the scheduler's part reads
        from jingxin.config import AnalyticsSettings, ContentSettings, PolicySettings

        analytics, content, policy = AnalyticsSettings(), ContentSettings(), PolicySettings()

    duty = PromotionDuties(settings=Settings(), store=store, clock=lambda: NOON + timedelta(hours=23))
    # When the scheduler looks before the phase is over, Then nothing is promoted
    assert due_for_promotion(store, now=NOON + timedelta(hours=23)) == [] and duty.run() == []
    # When it looks after, Then the best arm goes to the rest, forced (3 clicks of ~45 is
    # not significant) and said so
    duty.clock = lambda: NOON + timedelta(hours=25)
    [result] = duty.run()
    assert result.winner == "A" and result.forced and "not significantly better" in result.note
    assert result.summary.accepted == summary.waiting
    assert campaign_status(store, campaign_id=1)["status"] == "running"
    # And the next tick finds nothing more to do
    assert due_for_promotion(store, now=NOON + timedelta(hours=26)) == [] and duty.run() == []


def test_promote_on_orders_counts_only_those_sent(sqlite_store, tmp_path) -> None:
    from jingxin.data.store.models import BossOrder

    # Given a test share of 20% sent, and orders from many numbers still WAITING (counted
    # for their arm by assignment) but from only a few of those sent
    store = sqlite_store
    two_templates(store)
    numbers = NUMBERS[:300]
    body = VARIANTS.format(holdout="none") + "  test_share: 0.2\n  winner_metric: ordered\n"
    run_campaign(store, spec=load_spec(write_spec(tmp_path, body, numbers)), now=NOON)
    sent = {m for m, _, _ in messages(store, 1)}
    ids = dict(_send_all(store))
    waiting = [n for n in numbers if n not in sent]
    with store.transaction() as s:
        for k, n in enumerate([*waiting[:150], *sorted(sent)[:2]]):
            s.add(BossOrder(boss_ref=f"o{k}", request_key=f"o{k}", msisdn=n, product_id="P",
                            fee_fen=1000, state="placed", at=NOON + timedelta(hours=2)))
    # When promoted on orders (forced: two orders decide nothing)
    result = promote(store, campaign_id=1, context=DeliveryContext(),
                     now=NOON + timedelta(days=1), force=True)  # fmt: skip
    # Then each arm's rate is over the numbers sent, its successes among them only
    assert sum(s.n for s in result.standings) == len(sent) == len(ids)
    assert sum(s.successes for s in result.standings) == 2
    assert all(s.successes <= s.n for s in result.standings)


def _send_all(store) -> list[tuple[int, str]]:
    with store.transaction() as s:
        s.execute(update(Message).values(state="delivered", submitted_at=NOON,
                                         finished_at=NOON + timedelta(minutes=1)))  # fmt: skip
        return [tuple(r) for r in s.execute(select(Message.id, Message.arm).order_by(Message.id))]


def _click(store, ids: list[int]) -> None:
    with store.transaction() as s:
        s.add_all([LinkClick(token=f"t{i}", message_id=i, at=NOON + timedelta(hours=1))
                   for i in ids])  # fmt: skip


def test_send_time_split_measures_best_against_random(sqlite_store, tmp_path) -> None:
    # Given a spec that splits the audience into a best-time and a random-time arm
    store = sqlite_store
    approve(store, "mkt.a", "{{ name }}您好，A款流量包特惠。")
    body = ("template: {code: mkt.a}\nexperiment: {holdout: none}\n"
            "send_time: {mode: split, window: ['10:00', '20:00'], day: 2026-11-24}\n")
    summary = run_campaign(store, spec=load_spec(write_spec(tmp_path, body, NUMBERS[:200])),
                           now=NOON)  # fmt: skip
    # Then the two arms share the audience, and every message is wanted in the window
    assert set(summary.arms) == {"best-time", "random-time"}
    assert all(40 <= c["assigned"] == c["queued"] for c in summary.arms.values())
    with store.sessions() as s:
        times = s.scalars(select(Message.scheduled_at)).all()
    window = (datetime(2026, 11, 24, 2, 0, tzinfo=UTC), datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    assert len(times) == 200 and all(window[0] <= t < window[1] for t in times)


@pytest.mark.parametrize(("body", "message"), [
    (VARIANTS.format(holdout=0), (r"experiment.holdout: 0 leaves nothing to compare against; "
                                  r"use none to send to everyone without measuring")),
    (VARIANTS.format(holdout=1), r"experiment.holdout: 1: the hold-out is a share .* everyone"),
    (VARIANTS.format(holdout=0.6), r"experiment.holdout: 0.6: .*\(0, 0.5\]"),
    (VARIANTS.format(holdout="100%"), r"experiment.holdout: 1.0: .* would hold out everyone"),
    (VARIANTS.format(holdout="lots"), r"experiment.holdout: 'lots': give a share in"),
    (VARIANTS.format(holdout=0.1).replace("name: B", "name: A"),
     r"experiment.variants: variant 'A' is named more than once"),
    (VARIANTS.format(holdout=0.1).replace("name: B", "name: holdout"),
     r"experiment.variants.1.name: 'holdout' is the name of the hold-out arm"),
    (VARIANTS.format(holdout=0.1).replace("mkt.a}, weight: 1", "mkt.a}, weight: 0"),
     r"experiment.variants.0.weight: Input should be greater than 0"),
    ("template: {code: mkt.a}\n" + VARIANTS.format(holdout=0.1),
     r"template: give either template or experiment.variants"),
    ("experiment: {holdout: 0.1}\n", r"template: Field required"),
    ("template: {code: mkt.a}\nsend_time: {window: [10:00, 20:00]}\n",
     r"send_time.window: write the times in quotes"),
    ("send_time: {mode: split}\n" + VARIANTS.format(holdout=0.1),
     r"send_time.mode split .* cannot be combined with experiment.variants"),
    ("template: {code: mkt.a}\nexperiment: {test_share: 1}\n", r"experiment.test_share: 1"),
    ("template: {code: mkt.a}\nexperiment: {promote_after_hours: 24}\n",
     r"promote_after_hours: the test phase of what\? give test_share"),
    ("template: {code: mkt.a}\nexperiment: {test_share: 0.2, promote_after_hours: 0}\n",
     r"experiment.promote_after_hours: Input should be greater than 0"),
])  # fmt: skip
def test_a_bad_experiment_names_the_field(tmp_path, body, message) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(write_spec(tmp_path, body, NUMBERS[:3]))


def test_an_otp_campaign_takes_no_hold_out(tmp_path) -> None:
    path = write_spec(tmp_path, "template: {code: x}\nexperiment: {holdout: 0.1}\n", NUMBERS[:3])
    path.write_text(path.read_text("utf-8").replace("marketing", "otp"), "utf-8")
    with pytest.raises(SpecError, match="an otp campaign goes to everyone"):
        load_spec(path)


def test_an_unknown_variant_template_writes_nothing(sqlite_store, tmp_path) -> None:
    # Given a spec whose variant B names a template that is not approved
    store = sqlite_store
    approve(store, "mkt.a", "{{ name }}您好，A款流量包特惠。")
    spec = load_spec(write_spec(tmp_path, VARIANTS.format(holdout=0.1), NUMBERS[:20]))
    # When it runs, Then the error names the variant, and nothing is written
    with pytest.raises(InputError, match=r"experiment.variants\[B\].template: .*mkt.b"):
        run_campaign(store, spec=spec, now=NOON)
    with store.sessions() as s:
        counts = [s.scalar(select(func.count()).select_from(t))
                  for t in (Campaign, ExperimentAssignment, Message)]  # fmt: skip
    assert counts == [0, 0, 0]


def test_an_arm_that_got_nobody_warns_and_the_rest_runs(sqlite_store, tmp_path) -> None:
    store = sqlite_store
    two_templates(store)
    # Given variant B weighted a millionth of A
    body = VARIANTS.format(holdout=0.1).replace("mkt.b}, weight: 1", "mkt.b}, weight: 0.000001")
    summary = run_campaign(store, spec=load_spec(write_spec(tmp_path, body, NUMBERS[:50])),
                           now=NOON)  # fmt: skip
    # When it runs, Then it warns that B got nobody, and A's numbers are queued
    assert summary.warnings == [("arm B got nobody of 50 numbers (weight 1e-06 of 1): it "
                                 "measures nothing; give it more weight or a larger audience")]
    assert summary.arms["A"]["queued"] == 50 - summary.held_out and "B" not in summary.arms


def test_a_link_needs_a_template_that_carries_it(sqlite_store, tmp_path) -> None:
    store = sqlite_store
    two_templates(store)
    approve(store, "mkt.link", "{{ name }}您好，流量包特惠 {{ link }}",
            {"name": "str", "link": "str"})  # fmt: skip
    body = "experiment: {holdout: none}\nlink: https://shop.example.cn/5g\n"
    spec = load_spec(write_spec(tmp_path, "template: {code: mkt.a}\n" + body, NUMBERS[:5]))
    with pytest.raises(SpecError, match=r"link: template \(mkt.a\) does not use \{\{ link \}\}"):
        run_campaign(store, spec=spec, now=NOON)
    spec = load_spec(write_spec(tmp_path, "template: {code: mkt.link}\n" + body, NUMBERS[:5]))
    assert run_campaign(store, spec=spec, now=NOON).accepted == 5
    with store.sessions() as s:
        rows = s.execute(select(Message.text, Message.link_url)).all()
    assert all("https://jx.cn/" in text and url == "https://shop.example.cn/5g"
               for text, url in rows)


def test_the_cli_shows_arms_and_a_refused_promotion(tmp_path, migrated_sqlite, monkeypatch) -> None:
    from typer.testing import CliRunner

    from jingxin.cli import app

    monkeypatch.setenv("JINGXIN_STORE__URL", f"sqlite:///{tmp_path / 'jx.db'}")
    monkeypatch.setenv("JINGXIN_CONFIG", os.devnull)
    store = open_store(migrated_sqlite(tmp_path / "jx.db"))
    try:
        two_templates(store)
    finally:
        store.dispose()
    body = VARIANTS.format(holdout=0.1) + "  test_share: 0.5\n"
    runner = CliRunner()
    result = runner.invoke(app, ["campaign", "run", str(write_spec(tmp_path, body, NUMBERS[:60]))])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert f"held out: {summary['held_out']}; waiting for promote: {summary['waiting']}" \
        in result.output  # fmt: skip
    assert "arm A: " in result.output and "arm B: " in result.output
    status = json.loads(runner.invoke(app, ["campaign", "status", "1"]).output)
    assert status["status"] == "testing" and set(status["arms"]) == {"A", "B"}
    # Pausing a test and resuming it keeps it waiting for its promotion
    assert control_cycle(tmp_path) == "campaign 1: testing"
    refused = runner.invoke(app, ["campaign", "promote", "1", "--metric", "replied"])
    assert refused.exit_code != 0 and "no arm has been sent yet" in str(refused.exception)


def control_cycle(tmp_path) -> str:
    store = open_store(f"sqlite:///{tmp_path / 'jx.db'}")
    try:
        assert control(store, campaign_id=1, action="pause") == "campaign 1: paused"
        return control(store, campaign_id=1, action="resume")
    finally:
        store.dispose()


def test_the_fingerprint_covers_the_experiment_link_and_send_time(tmp_path) -> None:
    import hashlib

    from jingxin.dispatch.campaign_spec import fingerprint

    # Given a plain spec, Then it hashes as before experiments existed
    plain = load_spec(write_spec(tmp_path, "template: {code: mkt.a}\n", NUMBERS[:3]))
    old = hashlib.sha256(json.dumps(["data-pack", "operator", "marketing",
                                     plain.template.model_dump(mode="json")],
                                    sort_keys=True, ensure_ascii=False).encode())  # fmt: skip
    old.update((tmp_path / "a.csv").read_bytes())
    assert fingerprint(plain) == old.hexdigest()
    # And each of experiment, link and send_time makes it another campaign
    marks = {fingerprint(plain)}
    for extra in ("experiment: {holdout: none}\n", "link: https://shop.example.cn/5g\n",
                  "send_time: {mode: random}\n"):
        spec = load_spec(write_spec(tmp_path, "template: {code: mkt.a}\n" + extra, NUMBERS[:3]))
        marks.add(fingerprint(spec))
    assert len(marks) == 4
