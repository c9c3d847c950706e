"""The query tail on a hand-made warehouse: exactly yesterday's queries through another
channel get one SMS with the SMS-hall codes; those taught in the last 30 days, SMS-hall
users and churned numbers are skipped by reason; the day's edges are exact."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from jingxin.config import JourneySettings, Settings
from jingxin.content.library import library_document
from jingxin.content.templates import render
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.journeys.trigger import TriggerContext
from jingxin.journeys.triggers import trigger
from jingxin.journeys.triggers.tail import QUERY_TAIL

D, T = dt.date, dt.datetime
DAY = D(2026, 5, 10)  # the scan's day: yesterday is 9 May
START = T(2026, 5, 9)  # yesterday's first instant


def _table(name: str, rows: list[tuple]) -> pa.Table:
    schema = TABLES[name].schema
    columns = list(zip(*rows, strict=True))
    return pa.table([pa.array(list(c), f.type) for f, c in zip(schema, columns, strict=True)],
                    schema=schema)  # fmt: skip


def subscriber(sid: int, *, status: str = "active", gender: str | None = "M") -> tuple:
    return (sid, f"+86139000000{sid:02d}", "china_mobile", "P1", "prepaid", status, gender,
            None, D(2015, 6, 1), None, 3, "浦东新区", None, 4, False, None)


SUBSCRIBERS = [subscriber(i) for i in range(1, 14)]
SUBSCRIBERS[8] = subscriber(9, status="churned")
SUBSCRIBERS[2] = subscriber(3, gender=None)
SUBSCRIBERS[10] = subscriber(11, status="double_stop")

CONTACTS = [
    (1, T(2026, 5, 9, 9), "hotline", "query"), (1, T(2026, 5, 9, 19), "app", "query"),  # last: app
    (2, T(2026, 5, 9, 10), "hall", "query"),
    (3, T(2026, 5, 9, 0, 0, 0), "web", "query"),  # yesterday's first instant
    (4, T(2026, 5, 9, 23, 59, 59), "hotline", "query"),  # yesterday's last second
    (5, T(2026, 5, 10, 0, 0, 0), "hotline", "query"),  # today: tomorrow's tail
    (6, T(2026, 5, 8, 23, 59, 59), "hotline", "query"),  # the day before yesterday
    (7, T(2026, 5, 9, 11), "sms_hall", "query"),  # queried by SMS: knows the codes
    (8, T(2026, 5, 9, 11), "hotline", "payment"),  # not a query
    (9, T(2026, 5, 9, 11), "hotline", "query"),  # churned
    (10, T(2026, 5, 9, 11), "hotline", "query"),
    (10, START - dt.timedelta(days=30), "app", "query"),  # 30 days before yesterday
    (11, T(2026, 5, 9, 11), "hall", "query"),
    (11, START - dt.timedelta(days=30, seconds=1), "hall", "query"),  # 30 days and a second
    (12, T(2026, 5, 9, 11), "web", "query"),
    (12, T(2026, 2, 8, 23, 59, 59), "sms_hall", "other"),  # 90 days and a second ago
    (13, T(2026, 5, 9, 11), "app", "query"), (13, T(2026, 4, 1, 12), "sms_hall", "query"),
]


@pytest.fixture(scope="module")
def warehouse():
    wh = open_duckdb(":memory:")
    wh.con.create_table("subscribers", _table("subscribers", SUBSCRIBERS))
    wh.con.create_table("channel_contacts", _table("channel_contacts", CONTACTS))
    yield wh
    wh.close()


def run(warehouse, settings: Settings | None = None, *, day: dt.date = DAY):
    return QUERY_TAIL.candidates(TriggerContext(warehouse=warehouse, day=day,
                                                settings=settings or Settings()))  # fmt: skip


def test_exactly_yesterday_s_other_channel_queries_are_taught_the_codes(warehouse) -> None:
    # When the scan of 10 May runs
    out = run(warehouse)
    # Then the subscribers who queried on 9 May through the hotline, a hall, the app or the
    # web, with the channel they used last that day, and the operator's hall number
    assert out.candidates.to_pylist() == [
        _row(1, "手机营业厅App"), _row(2, "营业厅"), _row(3, "网上营业厅"), _row(4, "客服热线"),
        _row(11, "营业厅"), _row(12, "网上营业厅"),
    ]
    # And who was left out, by reason: 10 queried 30 days before yesterday (11: a second
    # more, taught again); 13 used the SMS hall 39 days ago (12: 90 days and a second, too
    # long ago to count); 9 churned (11, barred both ways, may still learn the codes)
    assert out.skipped == {"recent_query": 1, "uses_sms_hall": 1, "churned": 1}


def test_the_text_teaches_the_menu_and_the_three_query_codes(warehouse) -> None:
    settings = Settings(journeys=JourneySettings(hall_number="10086123"))
    (first, *_) = run(warehouse, settings).candidates.to_pylist()
    document = library_document(first["template"])
    compiled = document.compile()
    text = render(compiled, {n: first[n] for n in compiled.variables},
                  category=document.category, signature=None).text  # fmt: skip
    assert text == ("尊敬的先生，感谢您通过手机营业厅App查询。以后查话费、流量、套餐，发短信到10086123就能办，"
                    "不用排队等待：发送“YE”查余额，“LL”查流量，“TC”查套餐，发送“0”查看全部功能。")  # fmt: skip


def test_a_day_after_the_data_has_no_candidates(warehouse) -> None:
    out = run(warehouse, day=D(2026, 6, 1))
    assert (out.candidates.num_rows, out.skipped) == (0, {})


def test_the_next_day_teaches_today_s_querier(warehouse) -> None:
    # 5 queried at midnight on the 10th: the scan of the 11th teaches them
    assert [r["subscriber_id"] for r in run(warehouse, day=D(2026, 5, 11)).candidates.to_pylist()
            ] == [5]  # fmt: skip


def test_the_registry_names_this_trigger() -> None:
    assert trigger("query_tail") is QUERY_TAIL and QUERY_TAIL.name == "query_tail"


def _row(sid: int, channel: str) -> dict:
    name = "尊敬的客户" if sid == 3 else "尊敬的先生"  # 3's gender is unknown
    return {"msisdn": f"+86139000000{sid:02d}", "subscriber_id": sid,
            "template": "care.query_tail", "name": name, "channel": channel,
            "hall_number": "10086"}  # fmt: skip
