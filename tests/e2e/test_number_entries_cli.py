"""Issue #11 as a new user met it: every "no" means no, whatever way the number was typed.

Each entry (opt-out, blacklist, consent, subscriber, policy decide and batch, why, send)
goes through the ``jingxin`` command with CliRunner and an SQLite store in a temp dir.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.errors import InputError, TemplateError

E164 = "+8613800138000"
AT = "2030-06-05T06:00Z"  # 14:00 in Shanghai: outside quiet hours


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JINGXIN_CONFIG", os.devnull)
    monkeypatch.setenv("JINGXIN_STORE__URL", f"sqlite:///{tmp_path / 'jx.db'}")
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return invoke


def _decide(run, number: str, category: str = "marketing") -> str:
    return run("policy", "decide", "--msisdn", number, "--category", category, "--at", AT)


@pytest.mark.parametrize("typed", ["13800138000", "8613800138000", "+86 138-0013-8000"])
def test_an_opt_out_typed_without_plus86_stops_marketing(run, typed: str) -> None:
    # Given consent, so that marketing would go
    run("consent", "add", "--msisdn", typed, "--wording", "同意", "--at", "2030-01-01T00:00Z")
    assert "outcome: send" in _decide(run, E164)
    # When the subscriber opts out, typed without +86
    assert f"opt-out recorded: {E164}" in run("optout", "add", "--msisdn", typed,
                                              "--at", "2030-06-01T00:00Z")  # fmt: skip
    # Then policy, asked in either form, refuses marketing
    for asked in (E164, "13800138000"):
        decided = _decide(run, asked)
        assert "outcome: reject" in decided and "opted_out" in decided


def test_a_blacklist_entry_typed_without_plus86_stops_everything(run) -> None:
    run("blacklist", "add", "--msisdn", "13800138000", "--at", "2030-06-01T00:00Z")
    assert "blacklisted" in _decide(run, E164, "notification")


def test_why_finds_decisions_whatever_form_is_asked(run) -> None:
    run("policy", "decide", "--msisdn", E164, "--category", "otp", "--at", AT, "--audit")
    assert "otp" in run("why", "13800138000", "--days", "100000")


def test_policy_batch_normalises_like_decide(run, tmp_path) -> None:
    # Given an opt-out, and candidates naming the same number in two forms and one non-number
    run("consent", "add", "--msisdn", E164, "--wording", "同意", "--at", "2030-01-01T00:00Z")
    run("optout", "add", "--msisdn", E164, "--at", "2030-06-01T00:00Z")
    path = tmp_path / "c.csv"
    path.write_text("msisdn,tenant_id,category,source,idempotency_key\n"
                    "13800138000,operator,marketing,campaign,a\n"
                    "008613800138000,operator,marketing,campaign,b\n"
                    "oops,operator,marketing,campaign,c\n", encoding="utf-8")  # fmt: skip
    out = run("policy", "batch", str(path), "--at", AT, "--out", str(tmp_path / "d.parquet"))
    import pyarrow.parquet as pq

    # Then both forms are opted out, and the non-number is an invalid number, not a crash
    assert json.loads(out.strip().splitlines()[-1]) == {"candidates": 3, "reject": 3}
    decided = pq.read_table(tmp_path / "d.parquet").to_pylist()
    assert [d["msisdn"] for d in decided] == [E164, E164, "oops"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["optout", "add", "--msisdn", "abc"], "--msisdn: invalid msisdn 'abc': not a number"),
        (["optout", "add", "--msisdn", E164, "--category", "spam"],
         "--category: 'spam' is not one of marketing, notification"),
        (["optout", "add", "--msisdn", E164, "--tenant", "ghost"],
         "opt_out.tenant: unknown tenant 'ghost'"),
        (["blacklist", "add", "--msisdn", "+12025550123"], "--msisdn: invalid msisdn"),
        (["consent", "add", "--msisdn", "12345"], "--msisdn: invalid msisdn '12345': too short"),
        (["subscriber", "set", "--msisdn", E164, "--roaming", "zz"],
         "--roaming: 'zz' is not an ISO 3166-1 alpha-2 country code"),
        (["why", "abc"], "MSISDN: invalid msisdn 'abc'"),
    ],
)
def test_bad_input_is_one_refusal_and_nothing_is_recorded(run, tmp_path, args: list[str],
                                                          says: str) -> None:
    with pytest.raises(InputError) as caught:
        run(*args)
    assert str(caught.value).startswith(says)
    assert "\n" not in str(caught.value)
    # And nothing was recorded
    import sqlite3

    run("db", "upgrade")
    with sqlite3.connect(tmp_path / "jx.db") as db:
        counts = [db.execute(f"select count(*) from {t}").fetchone()[0]
                  for t in ("opt_outs", "blacklist", "consents", "subscriber_state")]  # fmt: skip
    assert counts == [0, 0, 0, 0]


def _dead_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nobody listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "error", "says"),
    [
        (["--to", "abc", "--text", "hi"], InputError, "--to: invalid msisdn 'abc'"),
        (["--to", "13800138000", "--text", "长" * 400], TemplateError,
         "--text: the message needs 7 parts"),
    ],
)
def test_send_refuses_before_connecting(run, monkeypatch, args, error, says: str) -> None:
    # Given a channel at a port where nothing listens (a connection attempt would say so)
    monkeypatch.setenv("JINGXIN_CHANNELS", json.dumps([{"name": "sim-smpp",
                                                         "port": _dead_port()}]))
    # When a bad number or a too-long text is sent, Then the refusal names it
    with pytest.raises(error) as caught:
        run("send", *args, "--wait", "0")
    assert str(caught.value).startswith(says)


def test_smsc_port_options_are_range_checked() -> None:
    result = CliRunner().invoke(app, ["smsc", "--smpp-port", "99999"])
    assert result.exit_code == 2
    assert "--smpp-port" in result.output and "Traceback" not in result.output
