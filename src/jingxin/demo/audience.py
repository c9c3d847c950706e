"""The demo's campaign audience: candidates for a renewal campaign, read from the warehouse."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from jingxin.demo.runner import Workspace


def campaign_candidates(ws: Workspace, *, limit: int) -> pa.Table:
    """Marketing candidates: active subscribers whose contract ends within 90 days."""
    rows = _query(ws, f"""
        SELECT msisdn FROM subscribers
        WHERE status = 'active' AND contract_end BETWEEN DATE '2026-10-01' AND DATE '2026-12-31'
        ORDER BY subscriber_id LIMIT {int(limit)}
    """)
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


def _query(ws: Workspace, sql: str) -> pa.Table:
    import duckdb

    con = duckdb.connect(str(ws.warehouse), read_only=True)
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def renewal_audience(ws: Workspace, *, as_of: str) -> pa.Table:
    """The composite segment's subscribers with a plan-fit recommendation, and the variables
    of the care.plan_fit template: their plan, its contract end and the advice."""
    exported = ws.path("audience.parquet")
    return _query(ws, f"""
        SELECT s.msisdn, p.name AS plan_name,
               COALESCE(s.contract_end, DATE '{as_of}' + INTERVAL 3 MONTH)::DATE AS expiry,
               f.message AS advice,
               -- the SMS hall's plan-change code (jingxin.hall.boss.plan_code)
               'XY' || upper(left(regexp_replace(COALESCE(f.best_plan_id, f.up_plan_id),
                                                 '[^A-Za-z0-9]', '', 'g'), 10)) AS order_code
        FROM read_parquet('{exported}') a
        JOIN subscribers s USING (subscriber_id)
        JOIN plans p ON p.plan_id = s.plan_id
        JOIN plan_fit f ON f.subscriber_id = s.subscriber_id AND f.as_of = DATE '{as_of}'
        WHERE f.message IS NOT NULL AND s.status = 'active'
        ORDER BY s.subscriber_id
    """)


def usage_alert_audience(ws: Workspace, *, month: str, limit: int) -> pa.Table:
    """Subscribers who used 80-100 % of their data allowance last month (care.usage_near)."""
    return _query(ws, f"""
        SELECT s.msisdn, '尊敬的客户' AS name, (DATE '{month}' + INTERVAL 25 DAY)::DATE AS as_of,
               round(u.data_mb / p.data_mb, 2) AS used_share,
               CAST(p.data_mb - u.data_mb AS BIGINT) AS remaining_mb,
               '10GB加油包' AS pack_name, 20.0 AS pack_price, 'JY20' AS pack_code
        FROM usage_monthly u
        JOIN subscribers s USING (subscriber_id)
        JOIN plans p ON p.plan_id = s.plan_id
        WHERE u.month = DATE '{month}' AND s.status = 'active' AND p.data_mb > 0
          AND u.data_mb BETWEEN 0.8 * p.data_mb AND 0.99 * p.data_mb
        ORDER BY s.subscriber_id LIMIT {int(limit)}
    """)
