"""Birthday and anniversary triggers on a hand-made warehouse: exactly the subscribers
whose date falls on the day, leap-day dates on 28 February of a common year, the
salutation, the gift figures from the settings, and the skipped by reason.

(Named ``test_lifecycle_triggers`` because ``tests/unit/content/test_lifecycle.py``
exists: two test modules of one basename cannot be collected in one run.)
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from jingxin.config import Settings
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.journeys.trigger import TriggerContext
from jingxin.journeys.triggers.lifecycle import ANNIVERSARY, BIRTHDAY

D = dt.date


def subscriber(sid: int, *, birthday: dt.date | None, entry: dt.date = D(2015, 6, 1),
               status: str = "active", gender: str | None = "F") -> tuple:  # fmt: skip
    return (sid, f"+86139000000{sid:02d}", "china_mobile", "P1", "prepaid", status, gender,
            birthday, entry, None, sid % 8, "浦东新区", None, 4, False, None)


SUBSCRIBERS = [
    subscriber(1, birthday=D(1980, 10, 15), gender="F"),  # born on the day
    subscriber(2, birthday=D(2001, 10, 15), gender="M"),  # born on the day
    subscriber(3, birthday=D(1990, 10, 15), gender=None, status="churned"),  # not active
    subscriber(4, birthday=D(1990, 10, 16)),  # a day later
    subscriber(5, birthday=None, gender=None),  # no birth date: skipped
    subscriber(6, birthday=None, status="churned"),  # no birth date, but gone: not counted
    subscriber(7, birthday=D(1992, 2, 29)),  # leap-day birthday
    subscriber(8, birthday=D(1985, 2, 28), gender=None),
    subscriber(9, birthday=D(1985, 3, 1), gender="M", entry=D(2020, 10, 15)),  # 6 years on
    subscriber(10, birthday=D(1970, 1, 1), entry=D(2026, 10, 15)),  # joined today: no
    subscriber(11, birthday=D(1970, 1, 1), entry=D(2016, 2, 29)),  # leap-day entry
    subscriber(12, birthday=D(1970, 1, 1), entry=D(2019, 10, 15), status="suspended"),
]


@pytest.fixture(scope="module")
def warehouse():
    schema = TABLES["subscribers"].schema
    columns = list(zip(*SUBSCRIBERS, strict=True))
    table = pa.table([pa.array(list(c), f.type) for f, c in zip(schema, columns, strict=True)],
                     schema=schema)  # fmt: skip
    wh = open_duckdb(":memory:")
    wh.con.create_table("subscribers", table)
    yield wh
    wh.close()


def run(trigger, warehouse, day: dt.date, settings: Settings | None = None):
    ctx = TriggerContext(warehouse=warehouse, day=day, settings=settings or Settings())
    return trigger.candidates(ctx)


def ids(output) -> list[int]:
    return output.candidates.column("subscriber_id").to_pylist()


def test_exactly_the_active_subscribers_born_on_the_day_get_a_birthday_message(warehouse):
    # When the birthday trigger runs for 15 October
    got = run(BIRTHDAY, warehouse, D(2026, 10, 15))
    # Then the two active subscribers born on 15 October are the candidates
    assert ids(got) == [1, 2]
    rows = got.candidates.to_pylist()
    assert rows[0] == {"msisdn": "+8613900000001", "subscriber_id": 1,
                       "template": "care.birthday", "name": "尊敬的女士", "gift_data_mb": 1024}
    assert rows[1]["name"] == "尊敬的先生"
    # And the active subscriber with no birth date is counted as skipped (the churned not)
    assert got.skipped == {"no_birthday": 1}
    assert got.warning is None


@pytest.mark.parametrize(("day", "born"), [
    (D(2027, 2, 28), [7, 8]),  # a common year: the leap-day birthday is on the 28th
    (D(2028, 2, 28), [8]),  # a leap year: the 29th has its own day
    (D(2028, 2, 29), [7]),
    (D(2027, 3, 1), [9]),  # never moved to 1 March
])  # fmt: skip
def test_leap_day_birthdays(warehouse, day, born):
    assert ids(run(BIRTHDAY, warehouse, day)) == born


def test_the_gift_comes_from_the_settings(warehouse):
    settings = Settings(journeys={"gift_data_mb": 2048})
    got = run(BIRTHDAY, warehouse, D(2026, 10, 15), settings)
    assert set(got.candidates.column("gift_data_mb").to_pylist()) == {2048}


def test_no_birthday_today_gives_an_empty_table_with_the_skipped_still_counted(warehouse):
    got = run(BIRTHDAY, warehouse, D(2026, 12, 25))
    assert got.candidates.num_rows == 0
    assert {"msisdn", "template", "name", "gift_data_mb"} <= set(got.candidates.column_names)
    assert got.skipped == {"no_birthday": 1}


def test_anniversary_for_whole_years_on_the_network(warehouse):
    # Given claim_days 10 and a 200-minute gift
    settings = Settings(journeys={"claim_days": 10, "gift_voice_min": 200})
    # When the anniversary trigger runs for 15 October 2026
    got = run(ANNIVERSARY, warehouse, D(2026, 10, 15), settings)
    # Then only subscriber 9 (joined 2020-10-15) is a candidate: 10 joined today, 12 is
    # suspended
    assert got.candidates.to_pylist() == [{
        "msisdn": "+8613900000009", "subscriber_id": 9, "template": "care.anniversary",
        "name": "尊敬的先生", "years": 6, "gift_voice": 200, "gift_data_mb": 1024,
        "claim_by": D(2026, 10, 25)}]  # fmt: skip
    assert got.skipped == {}


def test_a_leap_day_entry_has_its_anniversary_on_28_february(warehouse):
    got = run(ANNIVERSARY, warehouse, D(2027, 2, 28))
    assert ids(got) == [11]
    assert got.candidates.column("years").to_pylist() == [11]


def test_the_messages_render_from_the_starter_library(warehouse):
    from jingxin.content.library import library_document
    from jingxin.content.templates import render

    for trigger, day in ((BIRTHDAY, D(2026, 10, 15)), (ANNIVERSARY, D(2026, 10, 15))):
        row = run(trigger, warehouse, day).candidates.to_pylist()[0]
        document = library_document(row["template"])
        text = render(document.compile(), {n: row[n] for n in document.variables},
                      category=document.category, signature=None).text  # fmt: skip
        assert text.startswith(row["name"] + "，")
        assert "1GB" in text


def test_a_warehouse_without_the_birthday_column_is_a_clear_error():
    from jingxin.errors import WarehouseError

    wh = open_duckdb(":memory:")
    wh.con.create_table("subscribers", pa.table({"subscriber_id": [1], "msisdn": ["x"]}))
    with pytest.raises(WarehouseError, match="'subscribers' has no column 'status'"):
        run(BIRTHDAY, wh, D(2026, 10, 15))
    wh.close()
