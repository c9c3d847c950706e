"""A tiny, consistent operator as rows, and Parquet files of it in the schema's types."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jingxin.data.warehouse.schema import TABLES


def sample_rows() -> dict[str, list[dict]]:
    """A tiny, consistent operator: 2 plans, 4 subscribers, 2 months of usage."""
    plans = [
        dict(plan_id=p, name=n, tier=t, payment=pay, monthly_fee=f, data_mb=d, voice_min=v,
             sms=50, overage_data_per_mb=0.29, overage_voice_per_min=0.19, overage_sms=0.1,
             contract_months=0, generation=4)
        for p, n, t, pay, f, d, v in [("P18", "Basic 18", 1, "prepaid", 18.0, 1024, 100),
                                      ("P58", "Smart 58", 3, "postpaid", 58.0, 10240, 300)]
    ]
    subscribers = [
        dict(subscriber_id=i, msisdn=m, carrier=None, plan_id=p, payment=pay, status="active",
             gender="F", birthday=dt.date(1990, 1, 1), entry_date=e, contract_end=None,
             star_level=3, region="Haidian", handset_model=None, handset_generation=5,
             app_user=True, suspended_since=None)
        for i, m, p, pay, e in [
            (1, "+8613812345678", "P18", "prepaid", dt.date(2025, 3, 1)),  # < 6 months
            (2, "+8618612345678", "P58", "postpaid", dt.date(2024, 10, 1)),  # 6-12
            (3, "+8613312345678", "P58", "postpaid", dt.date(2020, 1, 1)),  # > 12
            (4, "+8619212345678", "P58", "postpaid", dt.date(2019, 5, 1)),  # > 12
        ]
    ]
    usage = [
        dict(subscriber_id=s, month=m, plan_id="P58", data_mb=d, voice_min=v, sms=5, bill=b,
             topup_count=0, topup_amount=0.0, roaming_days_domestic=0,
             roaming_days_international=0)
        for s, m, d, v, b in [
            (1, dt.date(2025, 5, 1), 9999.0, 999.0, 999.0),  # an older month: not counted
            (1, dt.date(2025, 6, 1), 100.0, 10.0, 18.0),
            (2, dt.date(2025, 6, 1), 200.0, 20.0, 58.0),
            (3, dt.date(2025, 6, 1), 300.0, 30.0, 60.0),
            (4, dt.date(2025, 6, 1), 400.0, 40.0, 70.0),
        ]
    ]
    return {"plans": plans, "subscribers": subscribers, "usage_monthly": usage}


def write_parquet(path: Path, table: str, rows: list[dict]) -> Path:
    """Rows as Parquet with the spec's types; a derived column left as None is dropped,
    as ``jingxin synth`` may do."""
    schema = TABLES[table].schema
    for name in TABLES[table].derived:
        if all(row.get(name) is None for row in rows):
            schema = schema.remove(schema.get_field_index(name))
    data = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(data, path)
    return path
