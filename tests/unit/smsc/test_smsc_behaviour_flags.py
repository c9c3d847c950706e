"""Simulator knobs from flags, the record, and MO scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jingxin.errors import ConfigError, InputError
from jingxin.smsc.behaviour import from_flags, parse_credentials, parse_status_mix
from jingxin.smsc.mo import read_script
from jingxin.smsc.record import Record


def test_flags_override_the_preset_and_keep_the_rest() -> None:
    behaviour = from_flags("flaky", tps=100, status_mix="DELIVRD=0.9,undeliv=0.1", credentials=["a:pw"])
    assert behaviour.tps == 100
    assert behaviour.status_mix == {"DELIVRD": 0.9, "UNDELIV": 0.1}
    assert behaviour.credentials == {"a": "pw"}
    assert behaviour.lose_response == 0.01  # from the preset


@pytest.mark.parametrize(
    ("call", "message"),
    [(lambda: parse_status_mix("DELIVERED=1"), "STAT=weight"), (lambda: parse_status_mix("DELIVRD=x"), "not a number"),
     (lambda: parse_status_mix("DELIVRD=0"), "no positive weight"), (lambda: parse_credentials(["nopw"]), "system_id:password"),
     (lambda: from_flags("nope"), "unknown SMSC preset"), (lambda: from_flags(lose_response=2), "probability"),
     (lambda: from_flags(tps=-1), ">= 0")],
)  # fmt: skip
def test_bad_flags_are_config_errors(call, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=message):
        call()


def test_record_keeps_counts_exact_and_writes_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record = Record(keep=2, path=path)
    for seq in range(3):
        record.add("smpp", "esme", "submit_sm", seq, short_message=b"\x01")
    record.close()
    assert record.counts["submit_sm"] == 3 and len(record.entries) == 2
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["sequence"] for r in rows] == [0, 1, 2] and rows[0]["fields"]["short_message"] == "01"


def test_script_lines_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "ok.txt"
    good.write_text("# subscribers\n0, 8613800138000, 10086, 41\n1.5, 8613900139000, 10086, hi, there\n")
    lines = read_script(good)
    assert [(l.delay, l.source, l.text) for l in lines] == [(0, "8613800138000", "41"), (1.5, "8613900139000", "hi, there")]
    bad = tmp_path / "bad.txt"
    bad.write_text("0, a, b, c\nsoon, a, b, c\n")
    with pytest.raises(InputError, match=r"bad.txt:2: delay 'soon'"):
        read_script(bad)
