"""The hall's menu file: per service number and tenant, what the hall says and sells.

A menu file (YAML) is a list of halls::

    halls:
      - service_number: "10086"
        tenant: operator              # whose hall this is (default: the operator's own)
        name: 中国移动短信营业厅
        menu: |                       # the answer to 0 / CD / 菜单 / ?
          回复41 免费体验 ...
        zones:                        # the zones this hall has (41 trials, 42 deals, 43 campaigns)
          "41": {title: 免费体验, limit: 10, trial_days: 7}
          "42": {title: 每日特惠, discount_pct: 20, discounted_months: 3, limit: 10}
          "43": {title: 精彩活动, limit: 5}
        complaint_words: [投诉, 举报, 骚扰, "12321", "315"]
        rewards:                      # what points buy (DH<code>): a voucher of a merchant
          - {code: K1, title: 咖啡券, merchant: M001, value_fen: 1000, points: 100, days: 30}
        survey: {id: nps-2026, question: 您愿意向亲友推荐我们吗？请回复0-10分}
        texts: {unknown: 抱歉，未能识别…}   # overrides of any reply text, by key

It is validated where it is read (:func:`load_menu`): an error names the file, the hall's
index and the field, or the line of a YAML syntax error. Inside, the hall works with the
frozen :class:`Menu` and :class:`HallMenu`. Unset (``[hall] menu_path``), the packaged
``default_menu.yaml`` is used.
"""

from __future__ import annotations

import importlib.resources
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jingxin.data.store.models.tenants import DEFAULT_TENANT_ID
from jingxin.errors import ConfigError, InputError
from jingxin.hall.text import normalise

DEFAULT_MENU = "default_menu.yaml"
ZONES = ("41", "42", "43")  # 41 free trials, 42 daily deals, 43 current campaigns
ZONE_LIMITS = {"41": 10, "42": 10, "43": 5}
DEFAULT_COMPLAINT_WORDS = ("投诉", "举报", "骚扰", "12321", "315")

# The fields each reply text of the core hall is given (``HallContext.say``): an override
# in ``texts:`` naming another field falls back to the default text, and
# :func:`check_menu` says so. Keys of other command modules are checked for syntax only.
TEXT_FIELDS: dict[str, frozenset[str]] = {
    "hall.unknown": frozenset(),
    "hall.busy": frozenset(),
    "hall.nothing_pending": frozenset(),
    "hall.dropped": frozenset(),
    "hall.survey_pending": frozenset(),
    "hall.hint.order": frozenset(),
    "hall.hint.plan_change": frozenset(),
    "hall.hint.verify": frozenset(),
    "hall.hint.referral": frozenset(),
    "hall.hint.nps": frozenset(),
    "hall.hint.suggestion": frozenset(),
    "cancel.expired": frozenset({"name", "code"}),
    "zone.empty": frozenset({"title"}),
    "zone.41": frozenset({"title", "items", "example"}),
    "zone.41.item": frozenset({"code", "name", "trial_days", "fee"}),
    "zone.42": frozenset({"title", "items", "example", "discount", "months"}),
    "zone.42.item": frozenset({"code", "name", "fee", "price"}),
    "zone.43": frozenset({"title", "items"}),
    "zone.43.item": frozenset({"n", "name"}),
    "query.no_account": frozenset({"service_number"}),
    "query.balance": frozenset({"balance", "plan"}),
    "query.usage": frozenset({"data_used", "data_left", "data_quota", "voice_used",
                              "voice_left", "sms_used", "sms_left"}),  # fmt: skip
    "query.plan": frozenset({"plan", "plan_id", "holdings"}),
    "feedback.nps": frozenset({"score"}),
    "feedback.nps_range": frozenset(),
    "feedback.suggestion": frozenset(),
    "feedback.suggestion_empty": frozenset(),
    "complaint.ack": frozenset({"ticket"}),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Zone(_Strict):
    """One zone of a hall. ``discount_pct`` off for ``discounted_months`` is zone 42's
    pricing rule (an order through the hall; then the list price); ``trial_days`` is zone
    41's free trial for a product that names none."""

    title: str = Field(min_length=1)
    limit: int = Field(default=10, ge=1, le=50)
    discount_pct: int = Field(default=0, ge=0, le=100)
    discounted_months: int = Field(default=0, ge=0, le=120)
    trial_days: int | None = Field(default=None, ge=1, le=366)


class Reward(_Strict):
    """What ``DH<code>`` buys with points: a voucher of ``merchant`` worth ``value_fen``."""

    code: str = Field(min_length=1, max_length=16)
    title: str = Field(min_length=1, max_length=128)
    merchant: str = Field(min_length=1, max_length=32)
    value_fen: int = Field(gt=0)
    points: int = Field(gt=0)
    days: int | None = Field(default=None, ge=1)  # None: [hall] voucher_days

    @field_validator("code")
    @classmethod
    def _alphanumeric(cls, code: str) -> str:
        if not normalise(code).isascii() or not normalise(code).isalnum():
            raise ValueError(f"{code!r}: a reward code is letters and digits only")
        return code

    @property
    def command_code(self) -> str:
        """The code as the router reads it from ``DH<code>`` (normalised)."""
        return normalise(self.code)


class Survey(_Strict):
    """The question asked after an order; a bare 0..10 answer is then the NPS score."""

    id: str = Field(min_length=1, max_length=32)
    question: str = Field(min_length=1)


class HallMenu(_Strict):
    """One hall: a service number, its tenant, its texts, zones, rewards and survey."""

    service_number: str = Field(min_length=1, max_length=21, pattern=r"^\d+$")
    tenant: str = Field(default=DEFAULT_TENANT_ID, min_length=1, max_length=64)
    name: str = Field(min_length=1)
    menu: str = Field(min_length=1)
    zones: dict[str, Zone] = Field(default_factory=lambda: default_zones())
    complaint_words: tuple[str, ...] = DEFAULT_COMPLAINT_WORDS
    rewards: tuple[Reward, ...] = ()
    survey: Survey | None = None
    texts: dict[str, str] = Field(default_factory=dict)

    @field_validator("service_number", mode="before")
    @classmethod
    def _number_as_text(cls, value: object) -> object:
        # YAML reads an unquoted 10086 as an int; a service number is digits, not a number.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("zones", mode="before")
    @classmethod
    def _zone_defaults(cls, value: object) -> object:
        if not isinstance(value, Mapping):
            return value
        zones = {}
        for key, zone in value.items():
            key = str(key)
            if key not in ZONES:
                raise ValueError(f"zone {key!r}: the hall has zones {', '.join(ZONES)}")
            zones[key] = _zone_with_defaults(key, zone)
        return zones

    @field_validator("complaint_words", mode="before")
    @classmethod
    def _words(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        words = tuple(normalise(str(w)) for w in value)
        if any(not w for w in words):
            raise ValueError("a complaint word is empty")
        return words

    @model_validator(mode="after")
    def _unique_rewards(self) -> HallMenu:
        codes = [r.command_code for r in self.rewards]
        twice = sorted({c for c in codes if codes.count(c) > 1})
        if twice:
            raise ValueError(f"rewards: code(s) {', '.join(twice)} listed twice")
        return self

    def reward(self, code: str) -> Reward | None:
        """The reward ``DH<code>`` asks for (either form of ``code``), or None."""
        wanted = normalise(code)
        return next((r for r in self.rewards if r.command_code == wanted), None)


def _zone_with_defaults(key: str, zone: object) -> object:
    """Zone ``key`` with the defaults of its kind: 42's pricing rule, each one's limit."""
    if not isinstance(zone, Mapping):
        return zone
    filled = dict(zone)
    filled.setdefault("limit", ZONE_LIMITS[key])
    if key == "42":
        filled.setdefault("discount_pct", 20)
        filled.setdefault("discounted_months", 3)
    elif filled.get("discount_pct") or filled.get("discounted_months"):
        raise ValueError(f"zone {key!r}: only zone 42 has a discount")
    if key == "41":
        filled.setdefault("trial_days", 7)
    elif filled.get("trial_days") is not None:
        raise ValueError(f"zone {key!r}: only zone 41 has a free trial")
    return filled


def default_zones() -> dict[str, Zone]:
    """Every zone with its default title, limit and (42) pricing rule."""
    titles = {"41": "免费体验", "42": "每日特惠", "43": "精彩活动"}
    return {k: Zone.model_validate(_zone_with_defaults(k, {"title": t})) for k, t in titles.items()}


class _MenuFile(_Strict):
    halls: tuple[HallMenu, ...] = Field(min_length=1)


class Menu:
    """Every hall of a menu file, found by the service number an MO was sent to."""

    def __init__(self, halls: tuple[HallMenu, ...], *, source: str = "") -> None:
        self.halls = halls
        self.source = source
        self._by_number = {h.service_number: h for h in halls}
        # Longest first: "1008601" beats "10086" for an MO to "100860123".
        self._prefixes = sorted(halls, key=lambda h: -len(h.service_number))

    def hall_for(self, service_number: str) -> HallMenu | None:
        """The hall of ``service_number``: exact, else the longest prefix (operators append
        extension digits to a service number), else None."""
        hall = self._by_number.get(service_number)
        if hall is not None:
            return hall
        return next((h for h in self._prefixes if service_number.startswith(h.service_number)),
                    None)  # fmt: skip

    def hall_at(self, service_number: str) -> HallMenu | None:
        """The hall of exactly ``service_number`` (no prefix matching), or None."""
        return self._by_number.get(service_number)

    @property
    def service_numbers(self) -> list[str]:
        return [h.service_number for h in self.halls]


def load_menu(path: str | Path | None = None) -> Menu:
    """The menu at ``path`` (None: the packaged default), validated; a bad file is a
    :class:`~jingxin.errors.ConfigError` naming the file, hall index and field or line."""
    text, source = read_menu_text(path)
    return parse_menu(text, source=source)


def read_menu_text(path: str | Path | None = None) -> tuple[str, str]:
    """The text of the menu file at ``path`` (None: the packaged default) and its name for
    messages; a file that cannot be read is a :class:`~jingxin.errors.ConfigError`."""
    if path is None:
        source = f"jingxin.hall/{DEFAULT_MENU}"
        text = importlib.resources.files("jingxin.hall").joinpath(DEFAULT_MENU).read_text("utf-8")
        return text, source
    from jingxin.data.textfile import read_text

    try:
        return read_text(path, what="hall menu file"), str(path)
    except InputError as exc:
        raise ConfigError(str(exc)) from exc


def parse_menu(text: str, *, source: str) -> Menu:
    """A menu from YAML ``text`` read from ``source`` (named in every error)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        from jingxin.data.textfile import yaml_problem

        raise ConfigError(yaml_problem(exc, source=source)) from exc
    if isinstance(raw, list):
        raw = {"halls": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected 'halls:' with a list of halls")
    try:
        parsed = _MenuFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc, raw)}") from exc
    numbers = [h.service_number for h in parsed.halls]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        raise ConfigError(f"{source}: service number(s) {', '.join(twice)} have two halls")
    return Menu(parsed.halls, source=source)


def _first_error(exc: ValidationError, raw: Any) -> str:
    """``halls[1] (10086): field 'zones.42.discount_pct': ...`` for the first error."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "halls" and isinstance(loc[1], int):
        index = loc[1]
        where = f"halls[{index}]"
        halls = raw.get("halls")
        if isinstance(halls, list) and index < len(halls) and isinstance(halls[index], dict):
            number = halls[index].get("service_number")
            where += f" ({number})" if number is not None else ""
        loc = loc[2:]
    field = ".".join(str(p) for p in loc) or "(the hall)"
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: field {field!r}: {message}" if where else f"field {field!r}: {message}"


def check_menu(path: str | Path | None = None) -> list[str]:
    """What is wrong with the menu at ``path`` (None: the packaged one); empty when fine.

    Beyond what :func:`load_menu` refuses: texts that do not parse as a format string,
    and texts of the core hall naming a field their reply does not have.
    """
    try:
        menu = load_menu(path)
    except ConfigError as exc:
        return [str(exc)]
    problems = []
    for index, hall in enumerate(menu.halls):
        where = f"{menu.source}: halls[{index}] ({hall.service_number})"
        problems += [f"{where}: texts.{key}: {problem}" for key, problem in text_problems(hall)]
    return problems


def text_problems(hall: HallMenu) -> list[tuple[str, str]]:
    """``(key, problem)`` for each text of ``hall`` that does not parse as a format string
    or names a field its reply does not have (keys of the core hall only), by key."""
    problems = []
    for key, template in sorted(hall.texts.items()):
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            problems.append((key, f"not a valid text ({exc})"))
            continue
        names = {name.split(".")[0].split("[")[0] for _, name, _, _ in parsed if name}
        known = TEXT_FIELDS.get(key)
        unknown = sorted(names - known) if known is not None else []
        if unknown:
            named = ", ".join("{" + n + "}" for n in unknown)
            has = ", ".join(sorted(known)) if known else "none"
            problems.append((key, f"unknown field(s) {named} (has: {has})"))
    return problems
