"""The way back's replies have a lane of their own whatever their category (models.lane_of),
row by row and column by column; everything else keeps its category's lane."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from jingxin.data.store.models import LANES, REPLY_LANE, lane_of
from jingxin.dispatch.outbox_rows import _table_columns, row_values

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def test_a_reply_rides_the_reply_lane_and_keeps_its_category() -> None:
    assert [lane_of("notification", s) for s in ("hall", "inbox", "api", "campaign", None)] == [3, 3, 1, 1, 1]
    assert lane_of("marketing", "journey") == LANES["marketing"]
    row = row_values({"tenant_id": "t", "msisdn": "+8613900000001", "category": "notification",
                      "text": "x", "idempotency_key": "k", "source": "hall"}, now=NOW)  # fmt: skip
    assert (row["lane"], row["category"]) == (REPLY_LANE, "notification")


def test_the_column_path_gives_the_same_lanes() -> None:
    sources = ["hall", "inbox", "api", None, "campaign"]
    table = pa.table({"tenant_id": ["t"] * 5, "msisdn": [f"+861390000000{i}" for i in range(5)],
                      "category": ["notification", "marketing", "notification", "otp", "marketing"],
                      "text": ["x"] * 5, "idempotency_key": [f"k{i}" for i in range(5)],
                      "source": sources})  # fmt: skip
    lanes = _table_columns(table, now=NOW).column("lane").to_pylist()
    assert lanes == [3, 3, 1, 0, 2]
    assert lanes == [lane_of(c, s) for c, s in zip(table.column("category").to_pylist(), sources,
                                                    strict=True)]  # fmt: skip
    # and without a source column, the category's lane
    plain = table.drop_columns(["source"])
    assert _table_columns(plain, now=NOW).column("lane").to_pylist() == [1, 2, 1, 0, 2]
