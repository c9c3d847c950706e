"""The festival calendar: lunar and solar-term dates, the official schedule, the holiday file."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from jingxin.errors import ConfigError
from jingxin.journeys.calendar import (
    CHINESE_CALENDAR,
    festival_due,
    festivals,
    official_schedule,
    read_holiday_file,
)

D = date

HOLIDAY_FILE = """\
# The State Council's notice for 2027, as the operator typed it in.
2027:
  holidays:
    - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
    - {name: 春节, from: 2027-02-05, to: 2027-02-11}
    - {name: national_day, from: 2027-10-01, to: 2027-10-07}
  workdays:
    - 2027-02-14
    - {date: 2027-09-26, name: 国庆节}
    - 2027-10-09
"""


def by_key(year: int, **kwargs) -> dict:
    return {f.key: f for f in festivals(year, **kwargs)}


@pytest.mark.parametrize(
    ("year", "key", "day", "kind"),
    [
        (2027, "spring_festival", D(2027, 2, 6), "lunar"),
        (2026, "spring_festival", D(2026, 2, 17), "lunar"),
        (2025, "spring_festival", D(2025, 1, 29), "lunar"),
        (2026, "lantern", D(2026, 3, 3), "lunar"),
        (2027, "qingming", D(2027, 4, 5), "solar"),
        (2026, "qingming", D(2026, 4, 5), "solar"),
        (2026, "dragon_boat", D(2026, 6, 19), "lunar"),
        (2026, "qixi", D(2026, 8, 19), "lunar"),
        (2026, "mid_autumn", D(2026, 9, 25), "lunar"),
        (2025, "mid_autumn", D(2025, 10, 6), "lunar"),
        (2026, "double_ninth", D(2026, 10, 18), "lunar"),
        (2027, "new_year", D(2027, 1, 1), "solar"),
        (2027, "labour_day", D(2027, 5, 1), "solar"),
        (2027, "national_day", D(2027, 10, 1), "solar"),
    ],
)
def test_festival_dates(year: int, key: str, day: date, kind: str) -> None:
    festival = by_key(year)[key]
    assert (festival.day, festival.kind) == (day, kind)


def test_festivals_come_by_date_with_their_templates() -> None:
    found = festivals(2026)
    assert [f.day for f in found] == sorted(f.day for f in found)
    assert {f.key for f in found} == {"new_year", "spring_festival", "lantern", "qingming",
                                      "labour_day", "dragon_boat", "qixi", "mid_autumn",
                                      "national_day", "double_ninth"}  # fmt: skip
    assert all(f.template.startswith("care.") for f in found)
    # The zodiac is the festival's lunar year: the Spring Festival 2027 opens the year of the goat
    assert by_key(2027)["spring_festival"].zodiac == "羊"


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2027, 2, 5), "spring_festival"),  # New Year's Eve (除夕), the day before
        (D(2027, 2, 6), None),  # already greeted the day before
        (D(2026, 9, 25), "mid_autumn"),
        (D(2026, 9, 30), "national_day"),  # the day before the days off start
        (D(2026, 10, 1), None),
        (D(2026, 4, 4), "qingming"),
        (D(2026, 1, 1), "new_year"),
        (D(2026, 12, 31), None),
        (D(2026, 7, 1), None),
        # Mid-Autumn fell on 2012-09-30, the day National Day is greeted: one greeting a
        # day, the earlier festival's
        (D(2012, 9, 30), "mid_autumn"),
    ],
)
def test_the_festival_greeted_on_a_day(day: date, expected: str | None) -> None:
    due = festival_due(day)
    assert (due.key if due else None) == expected


def test_the_2026_schedule_comes_from_chinese_calendar_with_make_up_workdays() -> None:
    # Given 2026, a year chinese-calendar knows
    schedule = official_schedule(2026)
    assert schedule is not None and schedule.source == CHINESE_CALENDAR
    found = by_key(2026, schedule=schedule)
    # Then the Spring Festival carries its nine days off and the two Saturdays worked for them
    spring = found["spring_festival"].days_off
    assert (spring.start, spring.end, spring.days) == (D(2026, 2, 15), D(2026, 2, 23), 9)
    assert spring.makeup_workdays == (D(2026, 2, 14), D(2026, 2, 28))
    # And National Day's make-up Sunday (09-20) is its own, though Mid-Autumn is nearer
    national = found["national_day"].days_off
    assert national.makeup_workdays == (D(2026, 9, 20), D(2026, 10, 10))
    assert found["mid_autumn"].days_off.makeup_workdays == ()
    assert national.values() == {"off_from": D(2026, 10, 1), "off_to": D(2026, 10, 7),
                                 "off_days": 7,
                                 "makeup_workdays": "9月20日（周日）、10月10日（周六）"}  # fmt: skip
    # And a festival that is no statutory holiday has no days off
    assert found["qixi"].days_off is None


def test_a_notice_naming_only_the_weekday_includes_the_weekend_next_to_it() -> None:
    # 2024: "6月10日（周一）放假，与周末连休" - chinese-calendar lists only the Monday
    dragon = by_key(2024, schedule=official_schedule(2024))["dragon_boat"].days_off
    assert (dragon.start, dragon.end, dragon.days) == (D(2024, 6, 8), D(2024, 6, 10), 3)
    # And New Year's days off that start in December belong to the new year
    new_year = by_key(2024, schedule=official_schedule(2024))["new_year"].days_off
    assert (new_year.start, new_year.end) == (D(2023, 12, 30), D(2024, 1, 1))


def test_2027_comes_from_the_operators_holiday_file(tmp_path: Path) -> None:
    # Given the operator's file for 2027, a year chinese-calendar does not know
    path = tmp_path / "holidays.yaml"
    path.write_text(HOLIDAY_FILE, encoding="utf-8")
    schedule = official_schedule(2027, holiday_file=path)
    assert schedule is not None and schedule.source == str(path)
    found = by_key(2027, schedule=schedule)
    # Then the festivals carry its days off; an unnamed workday goes to the nearest days off
    spring = found["spring_festival"].days_off
    assert (spring.start, spring.end, spring.makeup_workdays) == (
        D(2027, 2, 5), D(2027, 2, 11), (D(2027, 2, 14),))
    national = found["national_day"].days_off
    assert (national.start, national.end, national.days) == (D(2027, 10, 1), D(2027, 10, 7), 7)
    assert national.makeup_workdays == (D(2027, 9, 26), D(2027, 10, 9))
    # And the festivals the file leaves out have none (the lunar dates are still known)
    assert found["dragon_boat"].days_off is None
    assert found["dragon_boat"].day == D(2027, 6, 9)


def test_a_year_nobody_knows_is_none_with_a_warning(tmp_path, caplog) -> None:
    # Given no holiday file
    with caplog.at_level(logging.WARNING, logger="jingxin.journeys.calendar"):
        assert official_schedule(2027) is None
    assert "no official holiday schedule for 2027: set [journeys] holiday_file" in caplog.text
    # And a holiday file that stops at 2027
    path = tmp_path / "holidays.yaml"
    path.write_text(HOLIDAY_FILE, encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jingxin.journeys.calendar"):
        assert official_schedule(2028, holiday_file=path) is None
    assert "no official holiday schedule for 2028" in caplog.text and str(path) in caplog.text
    # But the festivals of that year are still there, by the lunar calendar
    assert by_key(2028)["spring_festival"].day == D(2028, 1, 26)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("2027:\n  holidays:\n    - {name: 春节, from: 2027-02-05, to: 2027-02-31}\n",
         "line 3: 2027.holidays[0].to: expected a date YYYY-MM-DD"),
        ("2027:\n  holidays:\n    - {name: 春节, from: 2027-02-05}\n",
         "line 3: 2027.holidays[0].to: Field required"),
        ("2027:\n  holidays:\n    - name: 腊八\n      from: 2027-01-15\n      to: 2027-01-15\n",
         "line 3: 2027.holidays[0].name: unknown holiday '腊八'"),
        ("2027:\n  holidays:\n    - name: 春节\n      from: 2027-02-11\n      to: 2027-02-05\n",
         "line 5: 2027.holidays[0].to: 2027-02-05 is before from"),
        ("2027:\n  holidays: []\n  workday: [2027-02-14]\n",
         "line 3: 2027.workday: Extra inputs are not permitted"),
        ("2027:\n  holidays:\n    - {name: 春节, from: 2027-02-05, to: 2027-02-11}\n"
         "  workdays:\n    - 2027-02-07\n",
         "line 5: 2027.workdays[0]: 2027-02-07 is also a day off"),
        ("2027:\n  workdays:\n    - {date: 2027-02-14, name: 端五}\n",
         "line 3: 2027.workdays[0].name: unknown holiday '端五'"),
        ("twenty:\n  holidays: []\n", "line 1: twenty: Input should be a valid integer"),
        ("2027:\n  holidays:\n    - {name: 春节, from: 2072-02-05, to: 2072-02-11}\n",
         "line 3: 2027.holidays[0].from: 2072-02-05..2072-02-11 is not in 2027"),
        ("2027:\n  holidays: [\n", "invalid YAML"),
        ("- 2027\n", "line 1: (file): expected a mapping of years"),
    ],
)
def test_a_bad_holiday_file_names_file_line_and_field(tmp_path, content: str, where: str) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_holiday_file(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert where in str(caught.value)


def test_a_missing_holiday_file_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="nowhere.yaml: cannot read the holiday file"):
        official_schedule(2030, holiday_file=tmp_path / "nowhere.yaml")
