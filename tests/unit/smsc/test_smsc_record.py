"""The simulator's record is on disk as each PDU arrives (a kill -9 must not lose it)."""

from __future__ import annotations

import json

from jingxin.smsc.record import Record


def test_each_received_pdu_is_on_disk_before_the_next_arrives(tmp_path) -> None:
    path = tmp_path / "record.jsonl"
    record = Record(path=path)
    record.add("smpp", "jingxin", "submit_sm", 7, destination_addr="8613800000001")
    # Read without closing or flushing: what a crash test sees after killing the process
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["sequence"] for line in lines] == [7]
