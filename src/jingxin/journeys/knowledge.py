"""The knowledge table of the roaming welcome: per destination, what a traveller needs on
landing - the climate of the season, entry rules, a safety tip, emergency numbers, the
operator's roaming pack - written by people, never fetched from the web.

The table is a YAML file (``[journeys] knowledge_path``; unset, the packaged
``destinations.yaml``), validated where it is read (:func:`load_knowledge`): an error names
the file, the destination, its line and the field. International destinations are keyed by
ISO 3166-1 alpha-2 code, as ``location_events.country`` is; domestic ones (``kind:
domestic``) by ``CN-<city>`` and found by the prefixes of ``cells.district`` they ``match``.

The climate is an average of the season for a reference city, not a forecast: the message
says what to expect, not what the sky does today.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jingxin.config import TimeZoneName
from jingxin.errors import ConfigError, InputError

PACKAGED = "destinations.yaml"
SEASONS = ("dec_feb", "mar_may", "jun_aug", "sep_nov")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_DOMESTIC = re.compile(r"^CN-[A-Z0-9]{1,8}$")
_SENTENCE_END = ("。", "！", "？", ".", "!", "?")


def season_of(day: date) -> str:
    """The key of the season ``day`` falls in (months as the table groups them)."""
    return SEASONS[(day.month % 12) // 3]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Climate(_Strict):
    """A season's typical temperatures (°C) and its weather in a few words."""

    low: int = Field(ge=-60, le=60)
    high: int = Field(ge=-60, le=60)
    note: str = Field(min_length=1, max_length=30)

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: object) -> object:
        # The file writes a season as [low, high, note]: short enough to scan by eye.
        if isinstance(value, list | tuple):
            if len(value) != 3:
                raise ValueError("a season is [typical low, typical high, note]")
            return {"low": value[0], "high": value[1], "note": value[2]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Climate:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self


class RoamingPack(_Strict):
    """The operator's roaming pack for a destination: its name and daily cap in fen."""

    pack: str = Field(min_length=1, max_length=20)
    daily_fen: int = Field(ge=0)


class Destination(_Strict):
    """One destination of the table (see the module docstring for the fields)."""

    code: str
    kind: Literal["international", "domestic"] = "international"
    name: str = Field(min_length=1, max_length=20)
    city: str | None = None
    timezone: TimeZoneName | None = None
    climate: dict[Literal["dec_feb", "mar_may", "jun_aug", "sep_nov"], Climate]
    customs: str | None = None
    safety: str | None = None
    tip: str | None = None
    police: str | None = None
    ambulance: str | None = None
    roaming: RoamingPack | None = None
    match: tuple[str, ...] = ()
    hall_address: str = "当地自有"

    @field_validator("police", "ambulance", mode="before")
    @classmethod
    def _number_as_text(cls, value: object) -> object:
        # YAML reads an unquoted 110 as an int; an emergency number is digits, not a number.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("customs", "safety", "tip")
    @classmethod
    def _sentence(cls, value: str | None) -> str | None:
        # The texts are spliced into a message: each must end like a sentence.
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise ValueError("empty")
        return value if value.endswith(_SENTENCE_END) else value + "。"

    @model_validator(mode="after")
    def _complete(self) -> Destination:
        missing = [s for s in SEASONS if s not in self.climate]
        if missing:
            raise ValueError(f"climate: missing season(s) {', '.join(missing)} "
                             f"(every one of {', '.join(SEASONS)})")  # fmt: skip
        if self.kind == "international":
            if not _COUNTRY.match(self.code) or self.code == "CN":
                raise ValueError(f"{self.code!r}: an international destination is keyed by "
                                 "its ISO 3166-1 alpha-2 code (JP, US ...), not CN")  # fmt: skip
            wanted = ("city", "timezone", "customs", "safety", "police", "roaming")
        else:
            if not _DOMESTIC.match(self.code):
                raise ValueError(f"{self.code!r}: a domestic destination is keyed CN-<city>, "
                                 "e.g. CN-BJ")  # fmt: skip
            if not self.match or any(not m.strip() for m in self.match):
                raise ValueError("match: a domestic destination lists the cells.district "
                                 "prefixes it covers")  # fmt: skip
            wanted = ("tip",)
        absent = [name for name in wanted if getattr(self, name) is None]
        if absent:
            raise ValueError(f"missing field(s) {', '.join(absent)} "
                             f"(every {self.kind} destination has them)")  # fmt: skip
        return self

    def season(self, day: date) -> Climate:
        """The climate of the season ``day`` falls in."""
        return self.climate[season_of(day)]  # type: ignore[index]


@dataclass(frozen=True)
class Knowledge:
    """The destinations of one knowledge file, by code."""

    destinations: Mapping[str, Destination]
    source: str

    def get(self, code: str) -> Destination | None:
        return self.destinations.get(code)

    @property
    def domestic(self) -> tuple[Destination, ...]:
        """Domestic destinations, in file order (the first whose prefix matches wins)."""
        return tuple(d for d in self.destinations.values() if d.kind == "domestic")


def load_knowledge(path: str | Path | None = None) -> Knowledge:
    """The knowledge table at ``path`` (None: the packaged one), validated; a bad file is a
    :class:`~jingxin.errors.ConfigError` naming the file, the destination, line and field."""
    if path is None:
        source = f"jingxin.journeys/{PACKAGED}"
        text = importlib.resources.files("jingxin.journeys").joinpath(PACKAGED).read_text("utf-8")
    else:
        from jingxin.data.textfile import read_text

        source = str(path)
        try:
            text = read_text(path, what="roaming knowledge file")
        except InputError as exc:
            raise ConfigError(str(exc)) from exc
    return parse_knowledge(text, source=source)


def parse_knowledge(text: str, *, source: str) -> Knowledge:
    """A knowledge table from YAML ``text`` read from ``source`` (named in every error)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        from jingxin.data.textfile import yaml_problem

        raise ConfigError(yaml_problem(exc, source=source)) from exc
    entries = raw.get("destinations") if isinstance(raw, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{source}: expected 'destinations:' mapping codes to destinations")
    table = _child(node, "destinations")
    keys = {str(k.value): k for k, _ in table.value} if isinstance(table, yaml.MappingNode) else {}
    destinations: dict[str, Destination] = {}
    for code, entry in entries.items():
        code = str(code)
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: destinations.{code}{_at(keys.get(code))}: "
                              "expected a mapping of fields")  # fmt: skip
        try:
            destinations[code] = Destination.model_validate({**entry, "code": code})
        except ValidationError as exc:
            raise ConfigError(_problem(exc, source=source, code=code, key=keys.get(code),
                                       node=_child(table, code))) from exc  # fmt: skip
    return Knowledge(destinations=destinations, source=source)


def _problem(exc: ValidationError, *, source: str, code: str, key: Any, node: Any) -> str:
    """``<file>: destinations.JP (line 12): field 'climate.jun_aug': ...``; a problem of
    the whole entry names the line of its code."""
    err = exc.errors()[0]
    loc = [p for p in err["loc"] if p != "code"]
    message = err["msg"].removeprefix("Value error, ")
    if not loc:
        return f"{source}: destinations.{code}{_at(key)}: {message}"
    field = ".".join(str(p) for p in loc)
    where = _at(_descend(node, loc) or key)
    return f"{source}: destinations.{code}{where}: field {field!r}: {message}"


def _at(node: Any) -> str:
    return f" (line {node.start_mark.line + 1})" if node is not None else ""


def _child(node: Any, key: str) -> Any:
    """The value node under ``key`` of a YAML mapping node (None when there is none)."""
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if str(k.value) == key), None)


def _descend(node: Any, loc: list[Any]) -> Any:
    """The deepest YAML node along ``loc`` (field names and list indexes)."""
    for part in loc:
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            deeper = node.value[part]
        else:
            deeper = _child(node, str(part))
        if deeper is None:
            break
        node = deeper
    return node
