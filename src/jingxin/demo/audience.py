"""The demo's campaign audience: candidates for a renewal campaign, read from the warehouse."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from jingxin.demo.runner import Workspace


def campaign_candidates(ws: Workspace, *, limit: int) -> pa.Table:
    """Marketing candidates: active subscribers whose contract ends within 90 days."""
    import duckdb

    con = duckdb.connect(str(ws.warehouse), read_only=True)
    try:
        rows = con.sql(
            f"""
            SELECT msisdn FROM subscribers
            WHERE status = 'active' AND contract_end BETWEEN DATE '2026-10-01' AND DATE '2026-12-31'
            ORDER BY subscriber_id LIMIT {int(limit)}
            """
        ).to_arrow_table()
    finally:
        con.close()
    n = rows.num_rows
    wanted = dt.datetime(2026, 10, 8, 12, 50, tzinfo=dt.UTC)
    return pa.table({
        "msisdn": rows.column("msisdn"),
        "tenant_id": pa.array(["operator"] * n),
        "category": pa.array(["marketing"] * n),
        "source": pa.array(["campaign"] * n),
        "source_id": pa.array([1] * n, pa.int64()),
        "priority": pa.array([5] * n, pa.int64()),
        "score": pa.array([1.0] * n),
        "wanted_at": pa.array([wanted] * n, pa.timestamp("us", tz="UTC")),
        "idempotency_key": pa.compute.binary_join_element_wise(
            pa.array(["renewal-2026q4"] * n), rows.column("msisdn"), ":"),
    })
