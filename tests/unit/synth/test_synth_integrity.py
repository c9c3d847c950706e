"""Keys are unique, numbers are real Chinese mobile numbers, references resolve."""

from __future__ import annotations

import pandas as pd
import pytest

from jingxin.data.synth.numbering import SEGMENTS
from jingxin.data.warehouse.schema import TABLES

KEYED = [name for name, spec in TABLES.items() if spec.key]


@pytest.mark.parametrize("name", KEYED)
def test_keys_are_unique(tables, name):
    df = tables(name)
    assert not df.duplicated(list(TABLES[name].key)).any()


def test_msisdns_are_unique_e164_in_real_segments_of_their_carrier(tables):
    subs = tables("subscribers")
    assert subs.msisdn.is_unique
    assert subs.msisdn.str.fullmatch(r"\+861\d{10}").all()
    segment = subs.msisdn.str[3:6].astype(int)
    for carrier, segs in SEGMENTS.items():
        rows = subs.carrier == carrier
        assert segment[rows].isin(segs).all(), carrier
    # Market shares: China Mobile is the largest, Broadnet the smallest
    share = subs.carrier.value_counts(normalize=True)
    assert 0.48 < share["china_mobile"] < 0.64
    assert share.get("china_broadnet", 0) < 0.03


@pytest.mark.parametrize(
    ("child", "column", "parent", "key"),
    [
        ("subscribers", "plan_id", "plans", "plan_id"),
        ("usage_monthly", "plan_id", "plans", "plan_id"),
        ("usage_monthly", "subscriber_id", "subscribers", "subscriber_id"),
        ("holdings", "product_id", "products", "product_id"),
        ("holdings", "subscriber_id", "subscribers", "subscriber_id"),
        ("offers", "product_id", "products", "product_id"),
        ("complaints", "subscriber_id", "subscribers", "subscriber_id"),
        ("channel_contacts", "subscriber_id", "subscribers", "subscriber_id"),
        ("churn_labels", "subscriber_id", "subscribers", "subscriber_id"),
        ("location_events", "subscriber_id", "subscribers", "subscriber_id"),
    ],
)
def test_references_resolve(tables, child, column, parent, key):
    assert tables(child)[column].isin(tables(parent)[key]).all()


def test_domestic_events_are_in_known_cells_and_roaming_ones_abroad(tables):
    events, cells = tables("location_events"), tables("cells")
    home = events.country == "CN"
    assert events.cell_id[home].isin(cells.cell_id).all()
    assert events.cell_id[~home].str.startswith("ROAM-").all()
    assert (events.cell_id[~home].str[5:] == events.country[~home]).all()


def test_payment_and_plan_agree(tables):
    subs, plans = tables("subscribers"), tables("plans")
    merged = subs.merge(plans[["plan_id", "payment", "contract_months"]], on="plan_id",
                        suffixes=("", "_plan"))
    assert (merged.payment == merged.payment_plan).all()
    # contract_end exactly for contract plans; suspended_since exactly for barred prepaid
    assert (merged.contract_end.notna() == (merged.contract_months > 0)).all()
    barred = subs.status.isin(["suspended", "double_stop"])
    assert (subs.suspended_since.notna() == barred).all()
    assert (subs.payment[barred] == "prepaid").all()


def test_every_msisdn_is_a_valid_chinese_mobile_number(tables):
    # The importer validates numbers with libphonenumber: synthetic ones must all pass.
    import phonenumbers

    for msisdn in tables("subscribers").msisdn:
        number = phonenumbers.parse(msisdn)
        assert phonenumbers.is_valid_number(number), msisdn
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE


def test_nothing_happens_outside_a_subscribers_time_on_the_network(tables):
    subs = tables("subscribers").set_index("subscriber_id")
    as_of = pd.Timestamp("2026-10-01")
    for name, column in [("offers", "sent_at"), ("channel_contacts", "ts"),
                         ("complaints", "ts"), ("location_events", "ts")]:
        df = tables(name)
        entry = pd.to_datetime(subs.entry_date.reindex(df.subscriber_id).to_numpy())
        ts = pd.to_datetime(df[column]).to_numpy()
        assert (ts >= entry.to_numpy()).all(), name
        assert (ts < as_of.to_datetime64()).all(), name
    usage = tables("usage_monthly")
    first_month = pd.to_datetime(subs.entry_date).dt.to_period("M").dt.to_timestamp()
    assert (pd.to_datetime(usage.month).to_numpy()
            >= first_month.reindex(usage.subscriber_id).to_numpy()).all()
