"""MSISDN normalisation: one number at a time and the vectorised column path agree."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.data import msisdn as msisdn_module
from jingxin.data.msisdn import (
    InvalidMsisdn,
    carrier_of,
    carrier_prefixes,
    e164_of_few,
    normalise_msisdn,
    normalise_msisdns,
)
from jingxin.data.warehouse.schema import CARRIERS

GOOD = [
    # (raw, E.164, carrier)
    ("13812345678", "+8613812345678", "china_mobile"),
    ("+86 138-1234-5678", "+8613812345678", "china_mobile"),
    ("008613812345678", "+8613812345678", "china_mobile"),
    ("8613812345678", "+8613812345678", "china_mobile"),
    ("+8613812345678", "+8613812345678", "china_mobile"),
    (" 186 1234 5678 ", "+8618612345678", "china_unicom"),
    ("(+86) 133 1234 5678", "+8613312345678", "china_telecom"),
    ("19212345678", "+8619212345678", "china_broadnet"),
    ("17405123456", "+8617405123456", "china_telecom"),
]

BAD = [
    # (raw, reason)
    ("", "empty"),
    (None, "empty"),
    ("   ", "empty"),
    ("abc", "not_a_number"),
    ("138abcd5678", "not_a_number"),
    ("1-800-FLOWERS", "not_a_number"),
    ("1381234567", "too_short"),
    ("+861381234567", "too_short"),
    ("138123456789", "too_long"),
    ("12345", "too_short"),
    ("12012345678", "invalid"),  # 120 is no mobile range
    ("+8617406123456", "invalid"),  # 1740 6..9 is unassigned
    ("01012345678", "not_mobile"),  # a Beijing landline
    ("+86 10 1234 5678", "not_mobile"),
    ("+14155552671", "foreign"),
    ("+447911123456", "foreign"),
]


@pytest.mark.parametrize(("raw", "e164", "carrier"), GOOD)
def test_good_numbers_normalise_to_e164_with_their_carrier(raw, e164, carrier):
    # Given a CN mobile in any usual spelling / When normalised
    result = normalise_msisdn(raw)
    # Then it is E.164 with the carrier of its range
    assert (result.e164, result.carrier) == (e164, carrier)


@pytest.mark.parametrize(("raw", "reason"), BAD)
def test_bad_numbers_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(InvalidMsisdn) as caught:
        normalise_msisdn(raw)
    assert caught.value.reason == reason
    assert reason.replace("_", " ") in str(caught.value)


def test_foreign_mobiles_pass_when_allowed_with_carrier_other():
    result = normalise_msisdn("+447911123456", allow_foreign=True)
    assert (result.e164, result.carrier) == ("+447911123456", "other")
    # A foreign landline is still no mobile.
    with pytest.raises(InvalidMsisdn, match="not mobile"):
        normalise_msisdn("+442079460000", allow_foreign=True)


def test_column_path_gives_the_same_answers_as_the_row_path():
    raws = [raw for raw, *_ in GOOD] + [raw for raw, _ in BAD]
    # Given a column of every case / When normalised at once
    column = normalise_msisdns(pa.array(raws, pa.string()))
    # Then each row matches the one-at-a-time answer
    for i, raw in enumerate(raws):
        try:
            one = normalise_msisdn(raw)
        except InvalidMsisdn as exc:
            expected = (None, None, exc.reason)
        else:
            expected = (one.e164, one.carrier, None)
        got = (column.e164[i].as_py(), column.carrier[i].as_py(), column.reason[i].as_py())
        assert got == expected, raw
    assert column.rejected == len(BAD)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.from_regex(r"\A(\+86|0086|86)?1[0-9]{10}\Z"),
    st.from_regex(r"\A\+?[0-9 -]{0,16}\Z"),
), max_size=30))
def test_fast_path_agrees_with_phonenumbers_on_any_digits(raws):
    column = normalise_msisdns(pa.array(raws, pa.string()))
    for i, raw in enumerate(raws):
        try:
            one = normalise_msisdn(raw)
        except InvalidMsisdn as exc:
            assert column.reason[i].as_py() == exc.reason, raw
        else:
            assert (column.e164[i].as_py(), column.carrier[i].as_py()) == \
                (one.e164, one.carrier), raw


def test_a_few_numbers_by_hand_give_the_column_answers():
    raws = [raw for raw, *_ in GOOD] + [raw for raw, _ in BAD]
    # Given every case, a few at a time and all at once past the hand-read size
    column = normalise_msisdns(pa.array(raws, pa.string())).e164.to_pylist()
    # Then the hand-read path answers as the column does, row by row
    assert e164_of_few(raws) == column
    assert [e164_of_few([raw])[0] for raw in raws] == column
    assert e164_of_few(raws * 8) == column * 8  # still by hand, many at once
    assert len(raws * 40) > msisdn_module._FEW  # past the hand-read size: the column itself
    assert e164_of_few(raws * 40) == column * 40


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.from_regex(r"\A(\+86|0086|86)?1[0-9]{10}\Z"),
    st.from_regex(r"\A(\+86|0086|86)?1[0-9０-９a]{10}\Z"),
    st.from_regex(r"\A\+?[0-9 -]{0,16}\Z"),
), max_size=30))
def test_a_few_numbers_by_hand_agree_with_the_column_on_any_digits(raws):
    assert e164_of_few(raws) == normalise_msisdns(pa.array(raws, pa.string())).e164.to_pylist()


def test_clean_e164_column_keeps_its_values_and_chunks_are_accepted():
    values = pa.chunked_array([["+8613812345678", "+8618612345678"], ["+8619912345678"]])
    column = normalise_msisdns(values)
    assert column.e164.to_pylist() == values.to_pylist()
    assert column.carrier.to_pylist() == ["china_mobile", "china_unicom", "china_telecom"]
    assert column.rejected == 0


def test_empty_column_and_non_string_column():
    assert len(normalise_msisdns(pa.array([], pa.string())).e164) == 0
    column = normalise_msisdns(pa.array([13812345678, None], pa.int64()))
    assert column.e164.to_pylist() == ["+8613812345678", None]
    assert column.reason.to_pylist() == [None, "empty"]


def test_prefix_table_covers_every_range_with_warehouse_carriers():
    table = carrier_prefixes()
    assert len(table) == 1000
    assert set(table.values()) <= set(CARRIERS)
    assert carrier_of("+8613812345678") == "china_mobile"
    assert carrier_of("+447911123456") == "other"


def test_a_column_all_of_one_length_with_junk_in_it():
    # Regression: every row 11 characters long, some not digits at all (found by hypothesis)
    column = normalise_msisdns(pa.array(["10000000000", "+0-00000000", "13812345678"]))
    assert column.reason.to_pylist() == ["invalid", "not_a_number", None]
    assert column.e164.to_pylist() == [None, None, "+8613812345678"]
