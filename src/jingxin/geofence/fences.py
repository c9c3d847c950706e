"""Fences as staff write them (YAML, or ``jingxin fence add``), validated, and resolved to
cells of the cell table.

A fences file is a list of fences::

    fences:
      - code: pvg-departure              # unique per tenant: [a-z0-9][a-z0-9._-]*
        name: 浦东机场出发层
        scenario: airport_departure      # types.SCENARIOS
        centre: {lat: 31.1443, lon: 121.8083}   # a centre and radius over the cell table,
        radius_m: 1500                   # ... or `cells: [C000101, C000102]`
        hours: "06:00-23:00"             # or a list of such; "22:00-06:00" wraps; none: all day
        dwell: 5m                        # or dwell_seconds: 300
        segment: frequent-flyers.yaml    # an audience spec (a mapping) or a file beside this one
        template: fence.airport_departure
        variables: {offer: 日本流量包10元/天, order_code: MYJP10}
        cap_per_day: 1
        residents: skip                  # once | repeat | skip
        validity_minutes: 120
        holdout: 5%                      # 0..0.5 (or 5%) held out; none: no hold-out;
                                         # unset: [analytics] holdout (marketing fences)

Everything a file says is checked before anything is saved: :func:`load_fences` names the
file, the line and the field of every problem it finds (all fences, not the first), and
:func:`resolve` turns the definitions into :class:`~jingxin.geofence.types.Fence` s against
the cell table (a radius covering no cell, unknown listed cells and duplicate codes are
errors; fences sharing cells are warnings). A fence keeps the definition it came from
(:class:`DefinedFence`), which the store saves as it is: a segment file is inlined there,
so every matcher on every machine reads the same fence.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from jingxin.data.store.models.tenants import DEFAULT_TENANT_ID
from jingxin.errors import InputError, SpecError
from jingxin.geofence.hours import hours_text, parse_duration, parse_hours
from jingxin.geofence.radius import Coordinates, cells_within
from jingxin.geofence.segments import segment_data
from jingxin.geofence.types import SCENARIOS, Fence

if TYPE_CHECKING:
    from jingxin.geofence.directory import CellIndex

__all__ = ["DefinedFence", "FenceDef", "cells_within", "fence_of", "hours_text", "load_fences",
           "overlaps", "parse_duration", "parse_fences", "parse_hours", "resolve"]  # fmt: skip

CODE = r"^[a-z0-9][a-z0-9._-]{0,63}$"
TEMPLATE_CODE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
RESERVED_VARIABLES = ("place", "local_time")  # the runner sets these on every offer
MAX_ERRORS = 30  # lines of one error message; the rest are counted


@dataclass(frozen=True)
class DefinedFence(Fence):
    """A fence with the definition it was made from (a JSON-able mapping: what the store
    keeps and ``export`` writes; ``validity_minutes`` is read from it)."""

    definition: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def validity_minutes(self) -> int:
        return int(self.definition.get("validity_minutes", 120))


# -- the definition ---------------------------------------------------------------------


class Centre(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)

    @model_validator(mode="before")
    @classmethod
    def _pair(cls, value: Any) -> Any:
        if isinstance(value, str) and "," in value:
            value = value.split(",", 1)
        if isinstance(value, list | tuple) and len(value) == 2:
            return {"lat": value[0], "lon": value[1]}
        return value


class FenceDef(BaseModel):
    """One fence as written: validated at the edge, then trusted."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=128)
    scenario: str
    cells: tuple[str, ...] | None = None
    centre: Centre | None = None
    radius_m: float | None = Field(default=None, gt=0, le=50_000)
    hours: tuple[str, ...] = ()
    segment: dict[str, Any] | None = None
    template: str = Field(pattern=TEMPLATE_CODE)
    category: Literal["marketing", "notification"] = "marketing"
    variables: dict[str, str] = Field(default_factory=dict)
    dwell_seconds: int = Field(default=0, ge=0, le=86_400)
    dwell: int | None = Field(default=None, exclude=True)  # "5m": folded into dwell_seconds
    cap_per_day: int = Field(default=1, ge=1, le=100)
    residents: Literal["once", "repeat", "skip"] = "once"
    sender: str | None = Field(default=None, pattern=r"^\d{3,21}$")
    tenant: str | None = Field(default=None, min_length=1, max_length=64)
    enabled: bool = True
    validity_minutes: int = Field(default=120, ge=1, le=7 * 1440)
    holdout: float | None = None  # None: the default ([analytics] holdout when marketing)
    _where: str = PrivateAttr(default="")  # "file:line: fences[i] (code)" when read from a file
    _lines: dict[str, str] = PrivateAttr(default_factory=dict)  # field -> the same, its line

    @field_validator("scenario")
    @classmethod
    def _scenario(cls, value: str) -> str:
        if value not in SCENARIOS:
            raise ValueError(f"{value!r} is no scenario (one of {', '.join(SCENARIOS)})")
        return value

    @field_validator("cells", mode="before")
    @classmethod
    def _cells(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            cells = [str(c).strip() for c in value]
            if not cells or not all(cells):
                raise ValueError("list at least one cell id (and no empty one)")
            return tuple(sorted(set(cells)))
        return value

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, value: Any) -> tuple[str, ...]:
        return tuple(hours_text(parse_hours(value)))

    @field_validator("dwell", mode="before")
    @classmethod
    def _dwell(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("variables", mode="before")
    @classmethod
    def _variables(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out = {}
        for key, item in value.items():
            if not str(key).isidentifier():
                raise ValueError(f"variable {key!r}: a name is letters, digits and _")
            if key in RESERVED_VARIABLES:
                raise ValueError(f"variable {key!r} is set for every offer; choose another name")
            if item is None or isinstance(item, Mapping | list):
                raise ValueError(f"variable {key!r}: a constant text, got {item!r}")
            out[str(key)] = str(item).lower() if isinstance(item, bool) else str(item)
        return out

    @field_validator("sender", mode="before")
    @classmethod
    def _sender(cls, value: Any) -> Any:
        # YAML reads an unquoted 10086 as an int; a service number is digits, not a number.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("holdout", mode="before")
    @classmethod
    def _holdout(cls, value: Any) -> Any:
        from jingxin.analytics.holdout import parse_share

        return parse_share(value)

    @field_validator("segment", mode="before")
    @classmethod
    def _segment(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        context = info.context or {}
        try:
            return segment_data(value, base_dir=context.get("base_dir"))
        except SpecError as exc:
            raise ValueError(str(exc).replace("\n", "; ")) from None

    @model_validator(mode="after")
    def _shape(self) -> FenceDef:
        if self.dwell is not None:  # folded here, so an error in it names the key written
            if self.dwell_seconds:
                raise ValueError("give dwell or dwell_seconds, not both")
            object.__setattr__(self, "dwell_seconds", self.dwell)
            object.__setattr__(self, "dwell", None)
        by_radius = self.centre is not None or self.radius_m is not None
        if self.cells is not None and by_radius:
            raise ValueError("give cells, or centre and radius_m, not both")
        if self.cells is None and (self.centre is None or self.radius_m is None):
            raise ValueError("give cells: [ids], or centre: {lat, lon} and radius_m")
        return self

    @property
    def where(self) -> str:
        """``file:line: fences[i] (code)`` when read from a file, else the code."""
        return self._where or self.code

    def at(self, name: str) -> str:
        """``file:line: fences[i] (code): name`` with the line of field ``name``."""
        return f"{self._lines.get(name, self.where)}: {name}"

    def definition(self, *, tenant: str | None = None) -> dict[str, Any]:
        """The JSON-able mapping the store keeps (every field explicit)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["tenant"] = self.tenant or tenant or DEFAULT_TENANT_ID
        return data

    @classmethod
    def from_fence(cls, fence: Fence) -> FenceDef:
        """The definition of a fence built in code (its cells listed)."""
        if isinstance(fence, DefinedFence) and fence.definition:
            return cls.model_validate(fence.definition)
        raw: dict[str, Any] = {
            "code": fence.code, "name": fence.name, "scenario": fence.scenario,
            "template": fence.template, "category": fence.category,
            "variables": dict(fence.variables), "hours": hours_text(fence.hours),
            "dwell_seconds": fence.dwell_seconds, "cap_per_day": fence.cap_per_day,
            "residents": fence.residents, "segment": fence.segment, "sender": fence.sender,
            "tenant": fence.tenant_id, "enabled": fence.enabled,
            "holdout": fence.holdout}  # fmt: skip
        if fence.radius_m is not None and fence.centre is not None:
            raw |= {"centre": list(fence.centre), "radius_m": fence.radius_m}
        else:
            raw["cells"] = list(fence.cells)
        return cls.model_validate(raw)


def fence_of(definition: Mapping[str, Any], cells: Sequence[str], *, version: int = 1,
             enabled: bool | None = None) -> DefinedFence:
    """The fence of a stored (already validated) definition and its resolved cells."""
    d = definition
    centre = d.get("centre")
    return DefinedFence(
        code=d["code"], name=d["name"], scenario=d["scenario"], cells=tuple(sorted(cells)),
        template=d["template"], tenant_id=d.get("tenant") or DEFAULT_TENANT_ID,
        category=d.get("category", "marketing"), variables=dict(d.get("variables", {})),
        hours=parse_hours(list(d.get("hours", ()))), dwell_seconds=int(d.get("dwell_seconds", 0)),
        cap_per_day=int(d.get("cap_per_day", 1)), residents=d.get("residents", "once"),
        segment=d.get("segment"), sender=d.get("sender"),
        centre=(float(centre["lat"]), float(centre["lon"])) if centre else None,
        radius_m=d.get("radius_m"),
        enabled=bool(d.get("enabled", True)) if enabled is None else enabled,
        version=version, holdout=d.get("holdout"), definition=dict(d))  # fmt: skip


# -- reading a file -----------------------------------------------------------------------


def load_fences(path: str | Path, *, cells: CellIndex | None = None) -> list[FenceDef]:
    """The fences of a YAML file, every one checked (with ``cells``, also resolved against
    the cell table); any problem is one InputError naming file:line: fence: field."""
    from jingxin.data.textfile import read_text, yaml_problem

    path = Path(path)
    text = read_text(path, what="fences file")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(yaml_problem(exc, source=path)) from exc
    defs = parse_fences(raw, root=root, source=str(path), base_dir=path.parent)
    if cells is not None:
        resolve(defs, cells)
    return defs


def parse_fences(raw: Any, *, root: yaml.Node | None = None, source: str = "<fences>",
                 base_dir: Path | None = None) -> list[FenceDef]:
    """Validate the loaded document (``fences: [...]``); every problem is collected."""
    if not isinstance(raw, dict) or set(raw) != {"fences"} or not isinstance(raw["fences"], list):
        raise InputError(f"{source}:1: expected a top-level 'fences:' list (and nothing else)")
    items = raw["fences"]
    if not items:
        raise InputError(f"{source}:1: fences: the list is empty")
    problems: list[str] = []
    defs: list[FenceDef] = []
    for index, item in enumerate(items):
        code = item.get("code") if isinstance(item, dict) else None
        label = f"fences[{index}]" + (f" ({code})" if code else "")
        try:
            fence = FenceDef.model_validate(item, context={"base_dir": base_dir})
        except ValidationError as exc:
            for err in exc.errors():
                loc = ("fences", index, *err["loc"])
                problems.append(f"{source}:{_line(root, loc)}: {label}: {_message(err)}")
            continue
        fence._where = f"{source}:{_line(root, ('fences', index))}: {label}"
        fence._lines = {key: f"{source}:{_line(root, ('fences', index, key))}: {label}"
                        for key in item}  # fmt: skip
        defs.append(fence)
    seen: dict[tuple[str | None, str], FenceDef] = {}
    for fence in defs:
        first = seen.setdefault((fence.tenant, fence.code), fence)
        if first is not fence:
            problems.append(f"{fence.at('code')}: {fence.code!r} is already {first.where}")
    _raise(problems)
    return defs


def _message(err: Mapping[str, Any]) -> str:
    loc = [p for p in err["loc"] if p not in ("[key]",)]
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    why = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        why = f"unknown field (fields: {', '.join(FenceDef.model_fields)})"
    elif err["type"] == "missing":
        why = "required"
    elif err["type"] == "model_type" and not text:
        why = "a fence is a mapping of fields (code, name, scenario, ...)"
    return f"{text}: {why}" if text else why


def _line(root: yaml.Node | None, loc: Sequence[Any]) -> int:
    from jingxin.data.textfile import yaml_line

    return yaml_line(root, loc)


def _raise(problems: list[str]) -> None:
    if problems:
        shown = problems[:MAX_ERRORS]
        more = len(problems) - len(shown)
        raise InputError("\n".join(shown + ([f"... and {more} more"] if more else [])))


# -- resolving against the cell table -------------------------------------------------


def resolve(defs: Sequence[FenceDef], cells: CellIndex, *,
            tenant: str = DEFAULT_TENANT_ID) -> tuple[list[DefinedFence], list[str]]:
    """The fences of ``defs`` with their cells from the cell table, and warnings (fences
    sharing cells). A radius covering no cell, listed cells the table lacks and duplicate
    codes are one InputError naming every such fence. ``tenant``: of fences naming none."""
    problems: list[str] = []
    coordinates: Coordinates | None = None
    out: list[DefinedFence] = []
    seen: set[tuple[str, str]] = set()
    for d in defs:
        owner = d.tenant or tenant
        if (owner, d.code) in seen:
            problems.append(f"{d.at('code')}: {d.code!r} is defined twice")
            continue
        seen.add((owner, d.code))
        if d.cells is not None:
            found = cells.lookup(list(d.cells))
            unknown = [c for c, i in zip(d.cells, found, strict=True) if i < 0]
            if unknown:
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                problems.append(f"{d.at('cells')}: {len(unknown)} not in the cell table: "
                                f"{', '.join(unknown[:5])}{more}")  # fmt: skip
                continue
            ids = list(d.cells)
        else:
            assert d.centre is not None and d.radius_m is not None
            try:
                coordinates = coordinates or Coordinates(cells)
            except InputError as exc:
                problems.append(f"{d.at('centre')}: {exc}")
                continue
            ids = coordinates.within(d.centre.lat, d.centre.lon, d.radius_m)
            if not ids:
                problems.append(f"{d.at('radius_m')}: {_no_cell(d, coordinates)}")
                continue
        out.append(fence_of(d.definition(tenant=owner), ids))
    _raise(problems)
    return out, overlaps(out)


def _no_cell(d: FenceDef, coordinates: Coordinates) -> str:
    assert d.centre is not None
    text = f"{d.radius_m:g} m around ({d.centre.lat}, {d.centre.lon}) covers no cell"
    nearest = coordinates.nearest(d.centre.lat, d.centre.lon)
    return text + (f" (the nearest, {nearest[0]}, is {nearest[1]:,.0f} m away)" if nearest else "")


def overlaps(fences: Sequence[Fence], *, limit: int = 20) -> list[str]:
    """``fences a and b share 3 cells`` for each pair of one tenant's fences that share
    cells (each keeps its own stays; a subscriber there may get both offers)."""
    by_cell: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, fence in enumerate(fences):
        for cell in fence.cells:
            by_cell[(fence.tenant_id, cell)].append(i)
    shared: Counter[tuple[int, int]] = Counter()
    for members in by_cell.values():
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1:]:
                shared[(a, b)] += 1
    out = [f"fences {fences[a].code} and {fences[b].code} share {n} cell{'s' * (n > 1)}"
           for (a, b), n in sorted(shared.items())]  # fmt: skip
    return out[:limit] + ([f"... and {len(out) - limit} more overlapping pairs"]
                          if len(out) > limit else [])  # fmt: skip

