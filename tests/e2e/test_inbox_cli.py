"""``jingxin inbox`` end to end: process the pending MO, list and search them with their
attribution (numbers masked), show one, count them; bad input is one line and exit 2."""

from __future__ import annotations

import binascii
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.store import open_store
from jingxin.data.store.models import LANES, Message, MoMessage, MoOutcome

NUMBER = "+8613912345678"
OTHER = "+8613800001111"


@pytest.fixture
def cli(tmp_path, migrated_sqlite, monkeypatch):
    # Settings from a jingxin.toml in an empty directory: a store there, one auto-reply.
    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_STORE__URL", "JINGXIN_CHANNELS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jingxin.toml").write_text(
        '[store]\nurl = "sqlite:///inbox.db"\n\n'
        '[[inbox.auto_replies]]\nservice_number = "10690000"\nkeyword = "CX"\n'
        'reply = "余额请登录App查看"\n', encoding="utf-8")
    store = open_store(migrated_sqlite(tmp_path / "inbox.db"))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    yield invoke, store
    store.dispose()


def seed(store) -> dict[str, int]:
    now = datetime.now(UTC)
    with store.transaction() as s:
        sent = Message(tenant_id="operator", campaign_id=5, msisdn=NUMBER, category="marketing",
                       lane=LANES["marketing"], text="offer", channel="sim-smpp",
                       idempotency_key="campaign:5:x", state="delivered", source="campaign",
                       source_id="5", submitted_at=now - timedelta(hours=1))
        s.add(sent)
        rows = {
            "td": MoMessage(channel="sim-smpp", msisdn=NUMBER, service_number="10690000",
                            text="TD", coding=8, parts=1, parts_expected=1, complete=True,
                            undecodable=False, received_at=now, dedup_key="k1"),
            "chat": MoMessage(channel="sim-smpp", msisdn=OTHER, service_number="1069012345",
                              text="你好，请问13800001111的套餐", coding=8, parts=1,
                              parts_expected=2, complete=False, undecodable=False,
                              received_at=now, dedup_key="k2"),
            "odd": MoMessage(channel="sim-smpp", msisdn=OTHER, service_number="10690000",
                             text=binascii.hexlify(b"cx").decode(), coding=245, parts=1,
                             parts_expected=1, complete=True, undecodable=True,
                             received_at=now, dedup_key="k3"),
        }
        s.add_all(rows.values())
        s.flush()
        return {name: row.id for name, row in rows.items()}


def test_process_list_show_stats(cli) -> None:
    invoke, store = cli
    ids = seed(store)
    # Given three pending MO, When `inbox process` runs
    done = invoke("inbox", "process")
    assert done.exit_code == 0, done.output
    assert '"handled": 2' in done.output and '"no_handler": 1' in done.output
    # Then `inbox list` shows them with outcome and attribution, numbers masked
    listed = invoke("inbox", "list")
    assert listed.exit_code == 0, listed.output
    assert "unsubscribe" in listed.output and "autoreply" in listed.output
    assert "no_handler" in listed.output and "campaign 5" in listed.output
    assert "incomplete 1/2" in listed.output and "undecodable" in listed.output
    assert NUMBER not in listed.output and "13800001111" not in listed.output
    assert "+861391234****" in listed.output
    # And searches narrow it
    only = invoke("inbox", "list", "--msisdn", "13912345678", "--outcome", "handled")
    assert f"\n│ {ids['td']} " in only.output or f"│ {ids['td']}  " in only.output
    assert "inbox: 1 MO" in only.output
    assert "inbox: 1 MO" in invoke("inbox", "list", "--text", "你好").output
    assert "inbox: 2 MO" in invoke("inbox", "list", "--service-number", "10690000").output
    assert "no MO match" in invoke("inbox", "list", "--outcome", "pending").output
    assert "inbox: 3 MO" in invoke("inbox", "list", "--since", "2000-01-01").output
    # And `inbox show` gives one in full
    shown = invoke("inbox", "show", str(ids["td"]))
    assert shown.exit_code == 0, shown.output
    assert "opted out of operator marketing" in shown.output
    assert "campaign 5 (message" in shown.output and "reply" in shown.output
    assert NUMBER not in shown.output
    # And `inbox stats` counts by handler and outcome, incomplete and undecodable included
    stats = invoke("inbox", "stats")
    assert stats.exit_code == 0, stats.output
    assert "by outcome: handled 2, no_handler 1" in stats.output
    assert "incomplete 1, undecodable 1, attributed to a message 1" in stats.output


@pytest.mark.parametrize(("args", "says"), [
    (("inbox", "show", "999"), "MO 999: no such message in the inbox"),
    (("inbox", "list", "--outcome", "lost"), "--outcome: 'lost' is not one of"),
    (("inbox", "list", "--since", "yesterday-ish"), "--since"),
    (("inbox", "list", "--limit", "0"), "--limit: 0 must be at least 1"),
])  # fmt: skip
def test_bad_input_is_a_clear_input_error(cli, args, says) -> None:
    from jingxin.errors import InputError

    invoke, _ = cli
    # When a command gets bad input
    done = invoke(*args)
    # Then it raises our InputError naming the field (the console script prints it as one
    # line with exit code 2) and writes nothing
    assert isinstance(done.exception, InputError), done.output
    assert says in str(done.exception)


def test_failed_mo_are_listed_and_handled_again_on_request(cli) -> None:
    invoke, store = cli
    # Given a TD from a raw source that is no phone number (the opt-out refuses it)
    with store.transaction() as s:
        s.add(MoMessage(channel="sim-smpp", msisdn="ABC", service_number="10690000", text="TD",
                        coding=0, parts=1, parts_expected=1, complete=True, undecodable=False,
                        received_at=datetime.now(UTC), dedup_key="bad"))
    assert '"failed": 1' in invoke("inbox", "process").output
    # Then it is listed as failed with the reason, and a plain re-run leaves it alone
    failed = invoke("inbox", "list", "--outcome", "failed")
    assert "inbox: 1 MO" in failed.output and "unsubscribe" in failed.output
    assert '"failed": 0' in invoke("inbox", "process").output
    assert "msisdn" in invoke("inbox", "show", "1").output
    # When asked, Then it is handled again (and fails again, the cause being unchanged)
    again = invoke("inbox", "process", "--retry-failed")
    assert '"failed": 1' in again.output and '"retried": 1' in again.output


def test_a_refusal_recorded_without_a_handler_is_honoured_by_retry_unmatched(cli) -> None:
    invoke, store = cli
    # Given "TD。" recorded with no handler (as an older version did) and a chat
    now = datetime.now(UTC)
    with store.transaction() as s:
        for n, text in enumerate(("TD。", "hello")):
            mo = MoMessage(channel="sim-smpp", msisdn=NUMBER if n == 0 else OTHER,
                           service_number="10690000", text=text, coding=8, parts=1,
                           parts_expected=1, complete=True, undecodable=False,
                           received_at=now, dedup_key=f"old{n}")  # fmt: skip
            s.add(mo)
            s.flush()
            s.add(MoOutcome(mo_id=mo.id, handler=None, outcome="no_handler", handled_at=now,
                            tenant_id="operator"))  # fmt: skip
    # When the operator asks for the MO no handler answered to be matched again
    done = invoke("inbox", "process", "--retry-unmatched")
    # Then the refusal is handled by the unsubscribe now, and the chat is left as it was
    assert done.exit_code == 0, done.output
    assert '"rematched": 1' in done.output and '"handled": 1' in done.output
    assert "unsubscribe" in invoke("inbox", "show", "1").output
    assert "no_handler" in invoke("inbox", "show", "2").output
