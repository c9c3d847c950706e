"""Tiny hand-made warehouse rows and CSV writers for the warehouse tests."""

from __future__ import annotations

import csv
from pathlib import Path

from jingxin.data.warehouse.connection import Warehouse

PLAN_HEADER = ("plan_id,name,tier,payment,monthly_fee,data_mb,voice_min,sms,"
               "overage_data_per_mb,overage_voice_per_min,overage_sms,contract_months,"
               "generation").split(",")
SUBSCRIBER_HEADER = ("subscriber_id,msisdn,plan_id,payment,status,gender,birthday,"
                     "entry_date,contract_end,star_level,region,handset_model,"
                     "handset_generation,app_user,suspended_since").split(",")
USAGE_HEADER = ("subscriber_id,month,plan_id,data_mb,voice_min,sms,bill,topup_count,"
                "topup_amount,roaming_days_domestic,roaming_days_international").split(",")


def plan_row(plan_id: str = "P1", tier: str = "1", payment: str = "prepaid") -> list[str]:
    return [plan_id, f"Plan {plan_id}", tier, payment, "18", "1024", "100", "50", "0.29",
            "0.19", "0.1", "0", "4"]


def subscriber_row(subscriber_id: object = 1, msisdn: str = "13812345678", **changes: str
                   ) -> list[str]:
    row = dict(zip(SUBSCRIBER_HEADER, [
        str(subscriber_id), msisdn, "P1", "prepaid", "active", "F", "1990-05-01",
        "2021-03-01", "", "3", "Haidian", "", "", "true", ""], strict=True))
    row.update(changes)
    return [row[name] for name in SUBSCRIBER_HEADER]


def usage_row(subscriber_id: int, month: str, data_mb: float, voice_min: float,
              bill: float, plan_id: str = "P1") -> list[str]:
    return [str(subscriber_id), month, plan_id, str(data_mb), str(voice_min), "10",
            str(bill), "0", "0", "0", "0"]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_rejects(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def rows_of(warehouse: Warehouse, table: str, order: str = "1") -> list[tuple]:
    return warehouse.con.con.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
