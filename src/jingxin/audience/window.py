"""The calendar of a feature build: the as-of date and the month windows before it.

Every derived feature looks only at data strictly before ``as_of``; month windows are
computed here once, in Python, and enter queries as literals so that DuckDB and PySpark
see the same boundaries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class AsOf:
    """``as_of`` and the windows derived from it (all half-open: ``[start, end)``)."""

    day: dt.date

    @property
    def last_month(self) -> dt.date:
        """First day of the last complete month before ``as_of``."""
        return add_months(month_start(self.day), -1)

    def months_back(self, n: int) -> dt.date:
        """First day of the month ``n`` months before the last month (0 = last month)."""
        return add_months(self.last_month, -n)

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.day, dt.time())

    def days_back(self, days: int) -> dt.datetime:
        return self.end - dt.timedelta(days=days)
