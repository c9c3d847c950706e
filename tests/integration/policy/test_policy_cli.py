"""The policy commands through ``jingxin`` (CliRunner, an SQLite store in a temp dir)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.errors import InputError

AT = "2030-06-05T14:30:00+00:00"  # 22:30 in Shanghai: quiet hours
NUMBER = "+8613800000001"


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("JINGXIN_STORE__URL", f"sqlite:///{tmp_path / 'jx.db'}")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return invoke


def test_decide_record_and_explain(run):
    # Given consent, then a marketing check inside quiet hours
    run(
        "consent",
        "add",
        "--msisdn",
        NUMBER,
        "--wording",
        "同意接收优惠",
        "--at",
        "2030-01-01T00:00Z",
    )
    deferred = run(
        "policy", "decide", "--msisdn", NUMBER, "--category", "marketing", "--at", AT, "--audit"
    )
    assert "outcome: defer" in deferred and "quiet_hours" in deferred
    # When the subscriber opts out and staff check again
    run("optout", "add", "--msisdn", NUMBER, "--at", "2030-06-05T10:00Z")
    rejected = run(
        "policy", "decide", "--msisdn", NUMBER, "--category", "marketing", "--at", AT, "--audit"
    )
    assert "outcome: reject" in rejected and "opted_out" in rejected
    # Then an OTP still goes, and `why` lists both audited decisions
    otp = run("policy", "decide", "--msisdn", NUMBER, "--category", "otp", "--at", AT)
    assert "outcome: send" in otp
    why = run("why", NUMBER, "--days", "100000")
    assert "opted_out" in why and "quiet_hours" in why and "defer" in why


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--msisdn", "12345"], "--msisdn: invalid msisdn '12345': too short"),
        (["--tenant", "nobody"], "--tenant: unknown tenant 'nobody' (known: operator)"),
        (["--category", "spam"], "--category: 'spam' is not one of otp, notification, marketing"),
    ],
)
def test_bad_input_is_refused_naming_the_option(run, args, says):
    # Given one bad option among good ones
    good = {"--msisdn": NUMBER, "--tenant": "operator", "--category": "otp"}
    options = [x for k, v in (good | dict(zip(args[::2], args[1::2], strict=True))).items()
               for x in (k, v)]  # fmt: skip
    # When staff ask for a decision, Then the command refuses with the option named
    with pytest.raises(InputError) as caught:
        run("policy", "decide", *options)
    assert str(caught.value) == says


def test_blacklist_subscriber_and_check(run):
    run("blacklist", "add", "--msisdn", NUMBER, "--reason", "complaints")
    run("subscriber", "set", "--msisdn", "+8613800000002", "--roaming", "us")
    assert "blacklisted" in run(
        "policy", "decide", "--msisdn", NUMBER, "--category", "notification"
    )
    roaming = run(
        "policy", "decide", "--msisdn", "+8613800000002", "--category", "marketing", "--at", AT
    )
    assert "outcome: send" in roaming  # 10:30 in New York
    assert "operator" in run("policy", "check")


def test_a_blacklist_entry_dated_with_at_holds_from_then(run):
    # Given a number blacklisted as of 10:00 UTC
    run("blacklist", "add", "--msisdn", NUMBER, "--at", "2030-06-05T10:00Z")
    # When staff check a notification an hour before, and at AT (14:30)
    earlier = run("policy", "decide", "--msisdn", NUMBER, "--category", "notification",
                  "--at", "2030-06-05T09:00Z")  # fmt: skip
    later = run("policy", "decide", "--msisdn", NUMBER, "--category", "notification", "--at", AT)
    # Then only the later check sees it
    assert "blacklisted" not in earlier and "outcome: send" in earlier
    assert "outcome: reject" in later and "blacklisted" in later


def test_batch_file_is_decided_and_audited(run, tmp_path):
    # Given a Parquet file of three candidates for one subscriber and one broken row
    path = tmp_path / "candidates.parquet"
    pq.write_table(
        pa.table(
            {
                "msisdn": [NUMBER, NUMBER, NUMBER, "oops"],
                "tenant_id": ["operator"] * 4,
                "category": ["marketing"] * 4,
                "source": ["campaign"] * 4,
                "source_id": [1, 2, 3, 4],
                "priority": [1, 3, 2, 0],
                "score": [0.0] * 4,
                "idempotency_key": ["a", "b", "c", "d"],
            }
        ),
        path,
    )
    # When decided with the batch form
    out = run(
        "policy",
        "batch",
        str(path),
        "--at",
        "2030-06-05T06:00Z",
        "--out",
        str(tmp_path / "d.parquet"),
    )
    # Then one send, three rejects, and the decisions are in the store and the file
    assert json.loads(out.strip().splitlines()[-1]) == {"candidates": 4, "send": 1, "reject": 3}
    decided = pq.read_table(tmp_path / "d.parquet").to_pylist()
    assert [d["winner"] for d in decided] == ["b", None, "b", None]
    assert "outranked" in run("why", NUMBER, "--days", "100000")


def test_policy_benchmarks_run_at_a_tiny_scale(run):
    batch = json.loads(run("bench", "policy-batch", "--scale", "2000").strip().splitlines()[-1])
    assert batch["candidates_per_second"] > 0 and sum(batch["outcomes"].values()) == 2000
    single = json.loads(run("bench", "policy-single", "--scale", "300").strip().splitlines()[-1])
    assert single["p99_us"] >= single["p50_us"] > 0


def test_batch_reads_csv_and_names_a_missing_column(tmp_path, run):
    good = tmp_path / "c.csv"
    good.write_text(
        "msisdn,tenant_id,category,source,idempotency_key,priority\n"
        "+8613800000009,operator,notification,api,n1,1\n"
    )
    out = run("policy", "batch", str(good), "--at", "2030-06-05T06:00Z", "--no-audit")
    assert json.loads(out.strip().splitlines()[-1]) == {"candidates": 1, "send": 1}
    bad = tmp_path / "bad.csv"
    bad.write_text("msisdn,tenant_id\n+8613800000009,operator\n")
    result = CliRunner().invoke(app, ["policy", "batch", str(bad)])
    assert result.exit_code != 0 and "category" in str(result.exception)
