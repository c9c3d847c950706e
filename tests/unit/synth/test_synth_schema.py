"""Every warehouse table is written with exactly the schema's columns and Arrow types."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jingxin.data.synth.writer import check_batch
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import InputError


@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_matches_schema(small_run, name):
    # Given the small run
    # When its file for this table is read back
    table = pq.read_table(small_run / f"{name}.parquet")
    spec = TABLES[name]
    # Then names, types and nullability are the contract's, nulls only where allowed,
    # and categorical values among the allowed choices
    assert table.schema.equals(spec.schema), (table.schema, spec.schema)
    assert table.num_rows > 0
    check_batch(spec, table)


def test_manifest_counts_match_files(small_run):
    manifest = json.loads((small_run / "synth.json").read_text())
    for name in TABLES:
        assert manifest["rows"][name] == pq.read_metadata(small_run / f"{name}.parquet").num_rows
    assert manifest["parameters"]["subscribers"] == 2_000
    assert manifest["parameters"]["seed"] == 7


def damaged(column: str, values: list) -> pa.Table:
    """The plans table with one column replaced, its declared field kept."""
    from jingxin.data.synth.catalogue import plans_table

    table = plans_table()
    i = table.schema.get_field_index(column)
    field = table.schema.field(i)
    return table.set_column(i, field, pa.array(values + [values[-1]] * (table.num_rows
                                                                         - len(values)),
                                                field.type))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda: damaged("payment", ["prepaid", "monthly"]), "choices"),
        (lambda: damaged("monthly_fee", [None, 1.0]), "nulls"),
        (lambda: damaged("plan_id", ["x"]).cast(pa.schema(
            [pa.field("plan_id", pa.large_string(), nullable=False)]
            + list(TABLES["plans"].schema)[1:])), "schema"),
    ],
)
def test_check_batch_refuses_a_bad_batch(bad, message):
    # Given a valid plans batch, When it is damaged, Then the check names what is wrong
    with pytest.raises(InputError, match=message):
        check_batch(TABLES["plans"], bad())
