"""The segment spec: what an audience is, as data (YAML/JSON or Python), never as SQL.

A spec is a boolean tree of predicates (``all`` / ``any`` / ``not``) over profile fields
(``subscribers`` columns, ``plan.*`` columns of the held plan) and derived features (the
``features`` table), plus set operations with other segments, exclusion lists, a
deterministic sample and an ordered limit. Example::

    name: data-lovers
    where:
      all:
        - {field: region, op: in, value: [浦东新区, 徐汇区]}
        - {field: plan.tier, op: ge, value: 3}
        - {field: product_preference, op: eq, value: data_heavy}
    combine:
      - {op: minus, segment: recent-complainers.yaml}
    exclude_files: [do-not-contact.csv]
    sample: {fraction: 0.1, seed: 7}
    limit: {n: 50000, order_by: [{field: arpu, desc: true}]}

Parsing (:func:`load_spec`, :func:`parse_spec`) checks the shape with pydantic and turns
its errors into a :class:`~jingxin.errors.SpecError` naming the spec path; field names and
value types are checked against the catalogue in :mod:`jingxin.audience.fields` by
:mod:`jingxin.audience.validate`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from jingxin.errors import SpecError

COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")
Op = Literal[
    "eq", "ne", "lt", "le", "gt", "ge", "between", "in", "not_in",
    "is_null", "not_null", "contains", "starts_with",
]
Scalar = bool | int | float | str | dt.date


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Predicate(_Model):
    """``field op value``; ``value`` is a list for in/not_in/between, absent for nulls."""

    field: str
    op: Op
    value: Scalar | list[Scalar] | None = None


class AllOf(_Model):
    all: list[Node]


class AnyOf(_Model):
    any: list[Node]


class NotOf(_Model):
    not_: Node = Field(alias="not")


def _node_kind(raw: Any) -> str:
    if isinstance(raw, BaseModel):
        return type(raw).__name__
    if isinstance(raw, dict):
        for key, kind in (("all", "AllOf"), ("any", "AnyOf"), ("not", "NotOf"),
                          ("not_", "NotOf")):
            if key in raw:
                return kind
    return "Predicate"


# A callable discriminator keeps pydantic's error paths short (where.all[2].field rather
# than one error per union member).
Node = Annotated[
    Annotated[Predicate, Tag("Predicate")] | Annotated[AllOf, Tag("AllOf")] | Annotated[AnyOf, Tag("AnyOf")] | Annotated[NotOf, Tag("NotOf")],
    Discriminator(_node_kind),
]


class Combine(_Model):
    """A set operation with another segment: a spec file (relative to this one) or inline."""

    op: Literal["union", "intersect", "minus"]
    segment: str | SegmentSpec


class Sample(_Model):
    fraction: float = Field(gt=0, le=1)
    seed: int = 0


class OrderKey(_Model):
    field: str
    desc: bool = False


class Limit(_Model):
    n: int = Field(ge=1, le=1_000_000_000)  # an engine's LIMIT is 64-bit; no base is larger
    order_by: list[OrderKey] = Field(default_factory=list)


class Area(_Model):
    """Where the resident (home) cell must lie: cells, districts or a lat/lon box."""

    cells: list[str] | None = None
    districts: list[str] | None = None
    box: tuple[float, float, float, float] | None = Field(
        default=None, description="lat_min, lon_min, lat_max, lon_max")

    @model_validator(mode="after")
    def _one_kind(self) -> Area:
        given = [k for k in ("cells", "districts", "box") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of cells, districts or box")
        return self


class Composite(_Model):
    """The composite model: resident cell + preference + price sensitivity + channel −
    complaint-sensitive subscribers (always excluded)."""

    area: Area
    preference: Literal["data_heavy", "voice_heavy", "balanced", "any"] = "any"
    max_price_sensitivity: float = Field(default=0.6, ge=0, le=1)
    channel: Literal["physical", "electronic", "any"] = "any"


class SegmentSpec(_Model):
    name: str = Field(min_length=1, max_length=120)
    description: str = ""
    as_of: dt.date | None = None
    where: Node | None = None
    composite: Composite | None = None
    combine: list[Combine] = Field(default_factory=list)
    exclude_files: list[str] = Field(default_factory=list)
    sample: Sample | None = None
    limit: Limit | None = None


def spec_path(loc: tuple[Any, ...]) -> str:
    """``('where', 'all', 2, 'field')`` → ``where.all[2].field`` (tags dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("Predicate", "AllOf", "AnyOf", "NotOf"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def parse_spec(raw: Any, *, source: str = "<spec>") -> SegmentSpec:
    """A validated :class:`SegmentSpec` from a dict, or a SpecError naming the path."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a segment spec is a mapping, got {type(raw).__name__}")
    try:
        return SegmentSpec.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: {spec_path(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SpecError("\n".join(lines)) from None


def load_spec(path: str | Path) -> SegmentSpec:
    """Read a YAML or JSON spec file."""
    from jingxin.data.textfile import read_text

    path = Path(path)
    text = read_text(path, what="segment spec", error=SpecError)
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except (ValueError, Exception) as exc:  # yaml.YAMLError carries the line
        raise SpecError(f"{path}: not valid YAML/JSON: {exc}") from exc
    return parse_spec(raw, source=str(path))


# -- the Python API: ``where(all_(F("arpu") > 50, F("region").isin([...])))`` -------------


class F:
    """A field reference that builds predicates: ``F("arpu") >= 50``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _p(self, op: str, value: Any = None) -> Predicate:
        return Predicate(field=self.name, op=op, value=value)  # type: ignore[arg-type]

    def __eq__(self, v: object) -> Predicate:  # type: ignore[override]
        return self._p("eq", v)

    def __ne__(self, v: object) -> Predicate:  # type: ignore[override]
        return self._p("ne", v)

    def __lt__(self, v: Any) -> Predicate:
        return self._p("lt", v)

    def __le__(self, v: Any) -> Predicate:
        return self._p("le", v)

    def __gt__(self, v: Any) -> Predicate:
        return self._p("gt", v)

    def __ge__(self, v: Any) -> Predicate:
        return self._p("ge", v)

    def between(self, lo: Any, hi: Any) -> Predicate:
        return self._p("between", [lo, hi])

    def isin(self, values: list[Any]) -> Predicate:
        return self._p("in", list(values))

    def notin(self, values: list[Any]) -> Predicate:
        return self._p("not_in", list(values))

    def is_null(self) -> Predicate:
        return self._p("is_null")

    def not_null(self) -> Predicate:
        return self._p("not_null")

    def contains(self, text: str) -> Predicate:
        return self._p("contains", text)

    __hash__ = None  # type: ignore[assignment]


def all_(*nodes: Any) -> AllOf:
    return AllOf(all=list(nodes))


def any_(*nodes: Any) -> AnyOf:
    return AnyOf(any=list(nodes))


def not_(node: Any) -> NotOf:
    return NotOf(not_=node)
