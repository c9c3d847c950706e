"""Compiling specs against the tiny warehouse: operators, set operations, exclusions,
samples, limits, the composite model and the errors raised before any query."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.audience.compile import compile_spec, sample_bucket
from jingxin.audience.explain import count, mask
from jingxin.audience.spec import F, parse_spec
from jingxin.errors import SpecError, WarehouseError


def ids(wh, raw, **kw) -> list[int]:
    compiled = compile_spec(wh, parse_spec({"name": "t", **raw}), **kw)
    return sorted(compiled.expr.to_pandas()["subscriber_id"].tolist())


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (F("region") == "浦东新区", [1, 3, 5]),
        (F("region") != "浦东新区", [2, 4, 6]),
        (F("plan.tier") >= 3, [1, 3, 5, 6]),
        (F("plan.payment") == "prepaid", [1, 4]),
        (F("star_level").between(2, 4), [1, 2, 3]),
        (F("region").isin(["徐汇区", "闵行区"]), [2, 4]),
        (F("region").notin(["浦东新区"]), [2, 4, 6]),
        (F("gender").is_null(), [5]),
        (F("birthday").not_null(), [1, 2, 4]),
        (F("handset_model").contains("Mi"), [3]),
        (F("entry_date") >= "2024-01-01", [2, 6]),
        (F("app_user") == True, [2, 3, 6]),
        (F("arpu") > 80, [2, 5]),
        (F("price_sensitivity") <= 0.5, [1, 2, 3, 5]),
        (F("home_district") == "浦东新区", [1, 3, 5]),
        (F("tenure_group") == "under_6m", [2]),
    ],
)
def test_operators(featured_shared, where, expected):
    assert ids(featured_shared, {"where": where.model_dump(by_alias=True)}) == expected


def test_boolean_tree(featured_shared):
    where = {"any": [{"all": [{"field": "region", "op": "eq", "value": "浦东新区"},
                              {"not": {"field": "plan.tier", "op": "eq", "value": 3}}]},
                     {"field": "plan_fit", "op": "eq", "value": "over"}]}
    assert ids(featured_shared, {"where": where}) == [2, 4, 5]


@pytest.mark.parametrize(("op", "expected"), [("union", [1, 2, 3, 5]),
                                              ("intersect", [3, 5]), ("minus", [1])])
def test_set_operations_with_a_spec_file(featured_shared, tmp_path, op, expected):
    # Given a file segment "tier >= 3 postpaid" and an inline one
    (tmp_path / "other.yaml").write_text(
        "name: other\nwhere: {all: [{field: plan.payment, op: eq, value: postpaid},"
        " {field: plan.tier, op: ge, value: 2}, {field: entry_date, op: lt, value: 2024-07-01}]}\n")
    raw = {"where": {"field": "region", "op": "eq", "value": "浦东新区"},
           "combine": [{"op": op, "segment": "other.yaml"}]}
    assert ids(featured_shared, raw, base_dir=tmp_path) == expected


def test_exclusion_file_in_any_number_format(featured_shared, tmp_path):
    (tmp_path / "dnc.txt").write_text("13800000001\n# a comment\n8613800000003\n")
    (tmp_path / "dnc.csv").write_text("msisdn,reason\n+8613800000005,asked\n")
    raw = {"where": {"field": "region", "op": "eq", "value": "浦东新区"},
           "exclude_files": ["dnc.txt", "dnc.csv"]}
    assert ids(featured_shared, raw, base_dir=tmp_path) == []


def test_bad_exclusion_line_names_file_and_line(featured_shared, tmp_path):
    (tmp_path / "dnc.txt").write_text("13800000001\nnot-a-number\n")
    with pytest.raises(SpecError, match=r"dnc.txt:2: not a phone number"):
        ids(featured_shared, {"exclude_files": ["dnc.txt"]}, base_dir=tmp_path)


def test_limit_orders_and_breaks_ties(featured_shared):
    raw = {"where": {"field": "arpu", "op": "ge", "value": 0},
           "limit": {"n": 2, "order_by": [{"field": "arpu", "desc": True}]}}
    assert ids(featured_shared, raw) == [2, 5]


def test_composite_segment_and_offer_channel(featured_shared):
    raw = {"composite": {"area": {"districts": ["浦东新区", "闵行区"]},
                         "max_price_sensitivity": 0.9}}
    compiled = compile_spec(featured_shared, parse_spec({"name": "c", **raw}))
    df = compiled.expr.to_pandas().set_index("subscriber_id")
    # 4 is in 闵行区 but complaint-sensitive: always excluded
    assert sorted(df.index) == [1, 3, 5]
    assert df.loc[5, "offer_channel"] == "hall" and df.loc[5, "nearest_hall"] == "H1"
    assert df.loc[3, "offer_channel"] == "online"


def test_composite_box_and_preference(featured_shared):
    raw = {"composite": {"area": {"box": [31.2, 121.5, 31.3, 121.6]},
                         "preference": "data_heavy"}}
    assert ids(featured_shared, raw) == [3]


def test_unknown_table_column_fails_before_query(warehouse):
    t = warehouse.table("subscribers").drop("region").to_pyarrow()
    warehouse.con.create_table("subscribers", t, overwrite=True)
    with pytest.raises(WarehouseError, match="'subscribers' has no column 'region'"):
        compile_spec(warehouse, parse_spec({"name": "t", "where": {
            "field": "region", "op": "eq", "value": "x"}}))


def test_features_needed_but_not_built(warehouse):
    with pytest.raises(WarehouseError, match="audience features --as-of"):
        ids(warehouse, {"where": {"field": "arpu", "op": "gt", "value": 1}})


def test_self_reference_is_refused(featured_shared, tmp_path):
    (tmp_path / "loop.yaml").write_text(
        "name: loop\ncombine: [{op: union, segment: loop.yaml}]\n")
    with pytest.raises(SpecError, match="refers back"):
        compile_spec(featured_shared, tmp_path / "loop.yaml")


def test_mask():
    assert mask("+8613812345678") == "+86138****5678"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**40), st.integers(0, 1000))
def test_sample_bucket_is_in_range(sid, seed):
    import ibis

    value = ibis.literal(sid, "int64")
    bucket = sample_bucket(value, seed).execute()
    assert 0 <= bucket < 2**31


def test_samples_nest_and_are_deterministic(featured_shared):
    # A larger fraction with the same seed keeps every row of a smaller one
    small = ids(featured_shared, {"sample": {"fraction": 0.3, "seed": 4}})
    large = ids(featured_shared, {"sample": {"fraction": 0.7, "seed": 4}})
    assert set(small) <= set(large)
    assert small == ids(featured_shared, {"sample": {"fraction": 0.3, "seed": 4}})
    full = count(compile_spec(featured_shared, parse_spec({"name": "a"})))
    assert full == 6
