"""The festival calendar: which festival falls on which day, and the official days off.

Festival dates come from the calendar itself - lunar-python for the lunar festivals (the
Spring Festival is the first day of the first lunar month) and for the solar terms
(Qingming), plain dates for the solar ones - so they are known for every year. The
official schedule (法定节假日 with their make-up workdays, 调休) is published by the State
Council year by year: chinese-calendar carries it for the years it knows (2004-2026 as
installed), an operator-maintained file (``[journeys] holiday_file``) for the years after.
A year with neither still has its festivals; only their days off are unknown, and
:func:`official_schedule` says so with the setting that fixes it.

The festival list is packaged (``holidays.yaml``); its order is the priority when two
festivals would be greeted on one day. The holiday file is YAML::

    2027:
      holidays:                      # name: a festival's key, Chinese or official name
        - {name: 春节, from: 2027-02-05, to: 2027-02-11}
        - {name: 国庆节, from: 2027-10-01, to: 2027-10-07}
      workdays: [2027-02-14, {date: 2027-09-26, name: 国庆节}]   # make-up workdays

A make-up workday without a name belongs to the nearest days off.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from jingxin.errors import ConfigError, InputError

log = logging.getLogger(__name__)

FESTIVALS_FILE = "holidays.yaml"
CHINESE_CALENDAR = "chinese-calendar"
WEEKDAYS = "一二三四五六日"
Month = Annotated[int, Field(ge=1, le=12)]


class FestivalSpec(BaseModel):
    """One festival of ``holidays.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)
    lunar: tuple[Month, Annotated[int, Field(ge=1, le=30)]] | None = None
    solar: tuple[Month, Annotated[int, Field(ge=1, le=31)]] | None = None
    term: str | None = None
    send_days_before: int = Field(default=0, ge=0, le=7)
    official: str | None = None
    template: str = Field(min_length=1)
    fallback: str | None = None
    values: dict[str, int | str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_date(self) -> FestivalSpec:
        if sum(x is not None for x in (self.lunar, self.solar, self.term)) != 1:
            raise ValueError("give exactly one of lunar, solar and term")
        return self


@dataclass(frozen=True)
class DaysOff:
    """One run of official days off (放假) and the make-up workdays (调休上班) that pay for it."""

    start: date
    end: date
    festivals: tuple[str, ...]  # festival keys (or official names) the days are for
    makeup_workdays: tuple[date, ...] = ()

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def values(self) -> dict[str, Any]:
        """The template variables of the days off; ``makeup_workdays`` as people write it."""
        makeup = "、".join(f"{d.month}月{d.day}日（周{WEEKDAYS[d.weekday()]}）"
                           for d in self.makeup_workdays)  # fmt: skip
        return {"off_from": self.start, "off_to": self.end, "off_days": self.days,
                "makeup_workdays": makeup}  # fmt: skip


DAYS_OFF_VARIABLES = frozenset(DaysOff(date.min, date.min, ()).values())


@dataclass(frozen=True)
class Festival:
    """A festival in one year: its day, its greeting and, when known, its official days off."""

    name: str
    key: str
    day: date
    kind: Literal["lunar", "solar"]
    template: str
    fallback: str | None = None
    send_days_before: int = 0
    official: bool = False  # a statutory holiday: it has days off in the official schedule
    values: tuple[tuple[str, int | str], ...] = ()
    days_off: DaysOff | None = None

    @property
    def send_on(self) -> date:
        return self.day - timedelta(days=self.send_days_before)

    @property
    def zodiac(self) -> str:
        """The zodiac animal (生肖) of the lunar year the festival falls in."""
        from lunar_python import Solar

        solar = Solar.fromYmd(self.day.year, self.day.month, self.day.day)
        return solar.getLunar().getYearShengXiao()


@dataclass(frozen=True)
class Schedule:
    """A year's official days off and make-up workdays, each labelled by its festival."""

    year: int
    source: str  # "chinese-calendar" or the holiday file
    days_off: Mapping[date, str]
    workdays: Mapping[date, str | None] = field(default_factory=dict)

    def periods(self) -> list[DaysOff]:
        """The runs of consecutive days off, each with its make-up workdays. A notice may
        name only the weekdays off ("6月10日放假，与周末连休"): the weekend next to them,
        unless it is a make-up workday, is part of the run."""
        off = dict(self.days_off)
        for day, label in self.days_off.items():
            for step in (timedelta(days=-1), timedelta(days=1)):
                near = day + step
                while near.weekday() >= 5 and near not in self.workdays and near not in off:
                    off[near] = label
                    near += step
        runs: list[list[date]] = []
        for day in sorted(off):
            if runs and day - runs[-1][-1] == timedelta(days=1):
                runs[-1].append(day)
            else:
                runs.append([day])
        names = [tuple(dict.fromkeys(off[d] for d in run)) for run in runs]
        makeup: list[list[date]] = [[] for _ in runs]
        for workday, label in sorted(self.workdays.items()):
            if not runs:
                break
            owners = [i for i, n in enumerate(names) if label in n] or range(len(runs))
            nearest = min(owners, key=lambda i: min(abs((workday - d).days) for d in runs[i]))
            makeup[nearest].append(workday)
        return [DaysOff(run[0], run[-1], n, tuple(m))
                for run, n, m in zip(runs, names, makeup, strict=True)]  # fmt: skip

    def days_off_around(self, day: date) -> DaysOff | None:
        """The days off that include ``day``, or None when it is not a day off."""
        return next((p for p in self.periods() if p.start <= day <= p.end), None)


@lru_cache(maxsize=1)
def festival_specs() -> tuple[FestivalSpec, ...]:
    """The packaged festival list, checked (a broken one names the festival and field)."""
    where = f"jingxin/journeys/{FESTIVALS_FILE}"
    raw = yaml.safe_load(resources.files("jingxin.journeys").joinpath(FESTIVALS_FILE)
                         .read_text(encoding="utf-8"))  # fmt: skip
    specs = []
    for index, item in enumerate((raw or {}).get("festivals") or []):
        try:
            specs.append(FestivalSpec.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            name = ".".join(map(str, err["loc"])) or "(festival)"
            raise ConfigError(f"{where}: festivals[{index}]: {name}: {err['msg']}") from exc
    return tuple(specs)


def festival_key(name: str) -> str | None:
    """The key of the festival called ``name`` (its key, Chinese or official name)."""
    return next((s.key for s in festival_specs() if name in (s.key, s.name, s.official)), None)


def _lunar_day(year: int, month: int, day: int) -> date:
    from lunar_python import Lunar

    try:
        solar = Lunar.fromYmd(year, month, day).getSolar()
    except Exception as exc:  # lunar-python raises a bare Exception for a day it lacks
        raise ConfigError(f"{FESTIVALS_FILE}: lunar {month}/{day} of {year}: {exc}") from exc
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def _term_day(year: int, term: str) -> date:
    """The day of the solar term ``term`` in ``year``: the lunar year's JieQi table holds
    the terms from the winter solstice before it, so the year's own 冬至 is in the next."""
    from lunar_python import Lunar

    for lunar_year in (year, year + 1):
        solar = Lunar.fromYmd(lunar_year, 1, 1).getJieQiTable().get(term)
        if solar is not None and solar.getYear() == year:
            return date(solar.getYear(), solar.getMonth(), solar.getDay())
    raise ConfigError(f"{FESTIVALS_FILE}: term {term!r} is not a solar term (节气) of {year}")


def _festival(spec: FestivalSpec, year: int) -> Festival:
    if spec.lunar is not None:
        day, kind = _lunar_day(year, *spec.lunar), "lunar"
    elif spec.solar is not None:
        day, kind = date(year, *spec.solar), "solar"
    else:
        day, kind = _term_day(year, spec.term or ""), "solar"
    return Festival(name=spec.name, key=spec.key, day=day, kind=kind, template=spec.template,
                    fallback=spec.fallback, send_days_before=spec.send_days_before,
                    official=spec.official is not None,
                    values=tuple(sorted(spec.values.items())))  # fmt: skip


def with_days_off(festival: Festival, schedule: Schedule | None) -> Festival:
    """``festival`` carrying its official days off, when it has some in ``schedule``."""
    if schedule is None or not festival.official:
        return festival
    return replace(festival, days_off=schedule.days_off_around(festival.day))


def festivals(year: int, *, schedule: Schedule | None = None) -> list[Festival]:
    """The year's festivals by date (same date: the list's order), with their days off
    when ``schedule`` (the year's official one) is given."""
    found = sorted((_festival(spec, year) for spec in festival_specs()), key=lambda f: f.day)
    return [with_days_off(f, schedule) for f in found]


def festival_due(day: date) -> Festival | None:
    """The festival greeted on ``day`` (at most one a day), without its days off."""
    due = [f for year in (day.year, day.year + 1) for f in festivals(year) if f.send_on == day]
    return due[0] if due else None


def missing_schedule(year: int, holiday_file: str | Path | None = None) -> str:
    """Why ``year`` has no official schedule, and the setting that fixes it."""
    if holiday_file is None:
        return f"no official holiday schedule for {year}: set [journeys] holiday_file"
    return (f"no official holiday schedule for {year}: chinese-calendar does not know it "
            f"and {holiday_file} has no {year}: add it there")  # fmt: skip


def official_schedule(year: int, *, holiday_file: str | Path | None = None) -> Schedule | None:
    """The year's official days off: chinese-calendar's when it has the year, else the
    holiday file's; None (with a logged warning) when neither has it."""
    schedule = _chinese_calendar(year)
    if schedule is None and holiday_file is not None:
        schedule = read_holiday_file(holiday_file).get(year)
    if schedule is None:
        log.warning("%s; festival dates are still known from the lunar calendar",
                    missing_schedule(year, holiday_file))  # fmt: skip
    return schedule


def _chinese_calendar(year: int) -> Schedule | None:
    """chinese-calendar's schedule for ``year`` (with the days off that run into it from
    the years around), or None for a year it was not published with."""
    import chinese_calendar

    try:
        chinese_calendar.get_holiday_detail(date(year, 7, 1))
    except NotImplementedError:
        return None
    start, end = date(year - 1, 12, 1), date(year + 1, 1, 31)
    window = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    days_off = {d: festival_key(n) or n for d in window if (n := chinese_calendar.holidays.get(d))}
    workdays = {d: festival_key(n) or n for d in window if (n := chinese_calendar.workdays.get(d))}
    around = Schedule(year=year, source=CHINESE_CALENDAR, days_off=days_off, workdays=workdays)
    # Keep the days off that touch the year (New Year's may start in December) and the
    # make-up workdays that pay for them.
    kept = [p for p in around.periods() if p.start.year <= year <= p.end.year]
    off = {d: days_off[d] for p in kept for d in days_off if p.start <= d <= p.end}
    work = {d: workdays[d] for p in kept for d in p.makeup_workdays}
    return replace(around, days_off=off, workdays=work)


# --- the operator's holiday file -------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML whose dates stay text, so an impossible one (02-31) is a field's error."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_scalar)


def _day(value: Any) -> Any:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")


Day = Annotated[date, BeforeValidator(_day)]


class _Period(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    start: Day = Field(alias="from")
    end: Day = Field(alias="to")


class _Workday(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: Day
    name: str | None = None


def _workday(value: Any) -> Any:
    return value if isinstance(value, dict) else {"date": value}


class _Year(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holidays: list[_Period] = Field(default_factory=list)
    workdays: list[Annotated[_Workday, BeforeValidator(_workday)]] = Field(default_factory=list)


_YEARS = dict[Annotated[int, Field(ge=2000, le=2200)], _Year]


def _field(loc: Sequence[Any]) -> str:
    """A location as the file's reader writes it: ``2027.holidays[0].from``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) and text else f"{'.' if text else ''}{part}"
    return text


def _line(root: yaml.Node | None, loc: Sequence[Any]) -> int:
    from jingxin.data.textfile import yaml_line

    return yaml_line(root, loc)


def read_holiday_file(path: str | Path) -> dict[int, Schedule]:
    """The official schedules of an operator's holiday file, by year; anything wrong is a
    ConfigError naming the file, the line and the field."""
    from pydantic import TypeAdapter

    from jingxin.data.textfile import read_text, yaml_problem

    path = Path(path)
    try:
        text = read_text(path, what="holiday file")
    except InputError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        root = yaml.compose(text)
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(exc, source=path, brief=False)) from exc

    def fail(loc: Sequence[Any], message: str) -> ConfigError:
        return ConfigError(f"{path}: line {_line(root, loc)}: {_field(loc) or '(file)'}: {message}")

    if not isinstance(raw, dict):
        raise fail((), "expected a mapping of years, e.g. 2027: {holidays: [...], workdays: [...]}")
    try:
        years = TypeAdapter(_YEARS).validate_python(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [p for p in err["loc"] if p != "[key]"]
        raise fail(loc, err["msg"].removeprefix("Value error, ")) from exc
    return {year: _schedule(year, entry, fail, source=str(path)) for year, entry in years.items()}


def _schedule(year: int, entry: _Year, fail: Any, *, source: str) -> Schedule:
    """One year of the holiday file as a schedule, its dates and names checked."""
    days_off: dict[date, str] = {}
    for index, period in enumerate(entry.holidays):
        loc = (year, "holidays", index)
        key = festival_key(period.name)
        if key is None:
            known = ", ".join(s.name for s in festival_specs() if s.official)
            raise fail((*loc, "name"), f"unknown holiday {period.name!r} (known: {known})")
        if period.end < period.start:
            raise fail((*loc, "to"), f"{period.end} is before from ({period.start})")
        if not (year - 1 <= period.start.year <= year and year <= period.end.year <= year + 1):
            raise fail((*loc, "from"), f"{period.start}..{period.end} is not in {year}")
        for n in range((period.end - period.start).days + 1):
            day = period.start + timedelta(days=n)
            if day in days_off:
                raise fail((*loc, "from"), f"{day} is already a day off ({days_off[day]})")
            days_off[day] = key
    workdays: dict[date, str | None] = {}
    for index, workday in enumerate(entry.workdays):
        loc = (year, "workdays", index)
        if workday.date in days_off:
            raise fail(loc, f"{workday.date} is also a day off ({days_off[workday.date]})")
        if abs(workday.date.year - year) > 1:
            raise fail(loc, f"{workday.date} is not near {year}")
        key = festival_key(workday.name) if workday.name is not None else None
        if workday.name is not None and key is None:
            raise fail((*loc, "name"), f"unknown holiday {workday.name!r}")
        workdays[workday.date] = key
    return Schedule(year=year, source=source, days_off=days_off, workdays=workdays)
