"""The segment spec: shape errors, field whitelist, value types, contradictions."""

from __future__ import annotations

import pytest

from jingxin.audience.spec import F, all_, any_, not_, parse_spec
from jingxin.audience.validate import check
from jingxin.errors import SpecError


def _spec(where):
    return parse_spec({"name": "t", "where": where})


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"all": [{"field": "region", "op": "eq", "value": "a"},
                  {"field": "arpu", "op": "gt", "value": 1},
                  {"field": "arpuu", "op": "gt", "value": 1}]},
         "where.all[2].field: unknown field 'arpuu'; did you mean 'arpu'?"),
        ({"field": "arpu", "op": "gt", "value": "many"}, "field 'arpu' is float"),
        ({"field": "region", "op": "gt", "value": "a"}, "gt needs a number or date field"),
        ({"field": "star_level", "op": "contains", "value": "1"}, "needs a string field"),
        ({"field": "arpu", "op": "in", "value": 5}, "in needs a list"),
        ({"field": "arpu", "op": "between", "value": [1]}, "between needs [low, high]"),
        ({"field": "arpu", "op": "is_null", "value": 3}, "is_null takes no value"),
        ({"field": "tenure_group", "op": "eq", "value": "old"}, "is not one of"),
        ({"field": "entry_date", "op": "ge", "value": "yesterday"}, "dates are YYYY-MM-DD"),
        ({"field": "app_user", "op": "eq", "value": 1}, "field 'app_user' is bool"),
        ({"any": []}, "where.any: an empty group"),
        ({"not": {"field": "plan.tierr", "op": "eq", "value": 1}},
         "where.not.field: unknown field 'plan.tierr'; did you mean 'plan.tier'?"),
    ],
)
def test_bad_predicates_name_the_spec_path(where, message):
    # Given a spec with one bad predicate / When it is checked / Then the error names it
    with pytest.raises(SpecError) as err:
        check(_spec(where), source="s.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("s.yaml: ")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "t", "where": {"field": "arpu", "op": "like", "value": 1}}, "where.op"),
        ({"name": "t", "sample": {"fraction": 1.5}}, "sample.fraction"),
        ({"name": "t", "limit": {"n": 0}}, "limit.n"),
        ({"name": "t", "where": {"all": [{"field": "a", "op": "eq", "extra": 1}]}},
         "where.all[0].extra"),
        ({"name": "t", "composite": {"area": {}}}, "composite.area"),
        ({"where": {}}, "name"),
    ],
)
def test_shape_errors_name_the_path(raw, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(raw, source="s.yaml")


@pytest.mark.parametrize(
    ("preds", "contradicts"),
    [
        ([F("arpu") > 100, F("arpu") < 50], True),
        ([F("arpu") >= 50, F("arpu") <= 50], False),
        ([F("arpu") > 50, F("arpu") <= 50], True),
        ([F("region") == "a", F("region") == "b"], True),
        ([F("region").isin(["a", "b"]), F("region") == "b"], False),
        ([F("region").isin(["a"]), F("region").notin(["a"])], True),
        ([F("home_cell").is_null(), F("home_cell") == "C1"], True),
        ([F("arpu").between(10, 5)], True),
    ],
)
def test_contradictions_warn_that_nothing_matches(preds, contradicts):
    _, checked = check(_spec(all_(*preds).model_dump(by_alias=True)))
    assert bool(checked.warnings) is contradicts
    if contradicts:
        assert "matches nothing" in checked.warnings[0]


def test_python_api_builds_the_same_tree_as_yaml():
    import yaml

    text = """
    name: t
    where:
      any:
        - {field: arpu, op: ge, value: 50}
        - not: {field: region, op: in, value: [浦东新区]}
    """
    from_yaml = parse_spec(yaml.safe_load(text))
    built = any_(F("arpu") >= 50, not_(F("region").isin(["浦东新区"])))
    assert from_yaml.where == built


def test_values_are_typed_by_field():
    spec, _ = check(_spec({"all": [{"field": "entry_date", "op": "ge", "value": "2024-01-01"},
                                   {"field": "arpu", "op": "gt", "value": 5},
                                   {"field": "star_level", "op": "eq", "value": 3.0}]}))
    values = [p.value for p in spec.where.all]
    assert [type(v).__name__ for v in values] == ["date", "float", "int"]
