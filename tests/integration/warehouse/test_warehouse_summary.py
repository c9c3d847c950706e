"""The warehouse summary over hand-made data, checked against figures worked out here."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from warehouse_parquet_samples import sample_rows, write_parquet

from jingxin.data.warehouse.directory import import_directory
from jingxin.data.warehouse.summary import months_before, summarise


@pytest.fixture
def loaded(warehouse, tmp_path):
    for table, rows in sample_rows().items():
        write_parquet(tmp_path / f"{table}.parquet", table, rows)
    import_directory(warehouse, tmp_path, rejects_dir=tmp_path / "rejects")
    return warehouse


def test_summary_counts_and_percentiles(loaded):
    result = summarise(loaded)
    # The latest usage month is June 2025, so tenure is as of its last day.
    assert result.usage_month == dt.date(2025, 6, 1)
    assert result.as_of == dt.date(2025, 6, 30)
    assert result.subscribers == 4
    assert result.by_plan[["plan_id", "tier", "subscribers"]].values.tolist() == \
        [["P18", 1, 1], ["P58", 3, 3]]
    assert result.by_tenure.values.tolist() == \
        [["< 6 months", 1], ["6–12 months", 1], ["> 12 months", 2]]
    assert dict(result.by_payment.values.tolist()) == {"postpaid": 3, "prepaid": 1}
    assert set(result.by_carrier.carrier) == {"china_mobile", "china_unicom",
                                              "china_telecom", "china_broadnet"}
    june = [r for r in sample_rows()["usage_monthly"] if r["month"] == dt.date(2025, 6, 1)]
    for measure, column in (("data (MB)", "data_mb"), ("bill (yuan)", "bill")):
        row = result.usage.set_index("measure").loc[measure]
        values = [r[column] for r in june]
        for q in (10, 50, 90, 99):
            assert row[f"p{q}"] == pytest.approx(np.percentile(values, q))


def test_tenure_moves_with_the_as_of_date(loaded):
    result = summarise(loaded, as_of=dt.date(2026, 6, 30))
    assert result.by_tenure.values.tolist() == [["> 12 months", 4]]


@pytest.mark.parametrize(("day", "months", "expected"), [
    (dt.date(2025, 8, 31), 6, dt.date(2025, 2, 28)),
    (dt.date(2024, 8, 31), 6, dt.date(2024, 2, 29)),
    (dt.date(2025, 1, 15), 12, dt.date(2024, 1, 15)),
    (dt.date(2025, 3, 1), 3, dt.date(2024, 12, 1)),
])
def test_months_before(day, months, expected):
    assert months_before(day, months) == expected
