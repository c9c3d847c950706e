"""The synthetic operator's calendar: the as-of date, the six usage months before it, and
the seasonality of each month (Spring Festival, summer holidays, National Day).

Days are numpy ``int64`` days since 1970-01-01 throughout the generator; this module turns
the as-of date into those numbers once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

# Spring Festival (lunar new year's day), Gregorian dates: the holiday month of that year.
SPRING_FESTIVAL = {
    2018: dt.date(2018, 2, 16), 2019: dt.date(2019, 2, 5), 2020: dt.date(2020, 1, 25),
    2021: dt.date(2021, 2, 12), 2022: dt.date(2022, 2, 1), 2023: dt.date(2023, 1, 22),
    2024: dt.date(2024, 2, 10), 2025: dt.date(2025, 1, 29), 2026: dt.date(2026, 2, 17),
    2027: dt.date(2027, 2, 6), 2028: dt.date(2028, 1, 26), 2029: dt.date(2029, 2, 13),
    2030: dt.date(2030, 2, 3), 2031: dt.date(2031, 1, 23), 2032: dt.date(2032, 2, 11),
    2033: dt.date(2033, 1, 31), 2034: dt.date(2034, 2, 19), 2035: dt.date(2035, 2, 8),
}
EPOCH = dt.date(1970, 1, 1)
USAGE_MONTHS = 6


def day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Season:
    """Multipliers of one calendar month relative to an ordinary month."""

    data: float = 1.0
    voice: float = 1.0
    sms: float = 1.0
    roam_domestic: float = 1.0
    roam_international: float = 1.0


def season(month: dt.date) -> Season:
    """Why these numbers: people travel home for Spring Festival (domestic roaming up, SMS
    greetings up, office data down), travel abroad in summer and in the National Day golden
    week, and stream more during the summer holidays."""
    festival = SPRING_FESTIVAL.get(month.year)
    if festival is not None and (festival.year, festival.month) == (month.year, month.month):
        return Season(data=0.95, voice=1.15, sms=1.6, roam_domestic=2.6, roam_international=1.8)
    if month.month in (7, 8):
        return Season(data=1.08, voice=0.95, roam_domestic=1.6, roam_international=1.7)
    if month.month == 10:
        return Season(data=1.02, roam_domestic=1.8, roam_international=1.6)
    if month.month == 5:  # May Day holiday
        return Season(roam_domestic=1.3, roam_international=1.2)
    return Season()


@dataclass(frozen=True)
class Calendar:
    """The run's dates: ``as_of`` is the first day of the month the labels look from."""

    as_of: dt.date

    @property
    def as_of_day(self) -> int:
        return day_number(self.as_of)

    @property
    def months(self) -> list[dt.date]:
        """The six whole months before ``as_of``, oldest first."""
        return [add_months(self.as_of, -k) for k in range(USAGE_MONTHS, 0, -1)]

    @property
    def month_starts(self) -> np.ndarray:
        return np.array([day_number(m) for m in self.months], dtype=np.int64)

    @property
    def month_ends(self) -> np.ndarray:
        """Exclusive end day of each usage month."""
        return np.array([day_number(add_months(m, 1)) for m in self.months], dtype=np.int64)

    def seasons(self) -> list[Season]:
        return [season(m) for m in self.months]

    def label_end_day(self) -> int:
        """Exclusive end of the three-month churn-label window."""
        return day_number(add_months(self.as_of, 3))
