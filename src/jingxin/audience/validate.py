"""Checking a parsed spec against the field catalogue, before any query runs.

:func:`check` walks the predicate tree and returns the spec with every value coerced to
its field's type (dates parsed, ints kept ints), or raises a
:class:`~jingxin.errors.SpecError` whose lines each name a spec path::

    where.all[2].field: unknown field 'arpuu'; did you mean 'arpu'?

It also finds groups that can never match (``arpu > 100`` and ``arpu < 50`` under one
``all``, ``in: []``, an empty ``between``) and reports them as warnings: such a segment
is valid but matches nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from jingxin.audience.fields import FieldInfo, lookup, suggestion
from jingxin.audience.spec import AllOf, AnyOf, NotOf, Predicate, SegmentSpec
from jingxin.errors import SpecError

ORDERED = {"int", "float", "date", "timestamp"}
LIST_OPS = {"in", "not_in"}


@dataclass
class Checked:
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)


def _coerce(info: FieldInfo, value: Any, path: str) -> Any:
    kind = info.kind
    bad = f"{path}: field {info.name!r} is {kind}, got {value!r}"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(bad)
        return value
    if isinstance(value, bool):
        raise ValueError(bad)
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise ValueError(bad)
        return value
    if kind == "float":
        if not isinstance(value, (int, float)):
            raise ValueError(bad)
        return float(value)
    if kind in ("date", "timestamp"):
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{bad} (dates are YYYY-MM-DD)") from None
    if not isinstance(value, str):
        raise ValueError(bad)
    if info.choices and value not in info.choices:
        raise ValueError(f"{path}: {value!r} is not one of {', '.join(info.choices)} "
                         f"(field {info.name!r})")
    return value


def _check_value(p: Predicate, info: FieldInfo, path: str) -> Any:
    op, v = p.op, p.value
    if op in ("is_null", "not_null"):
        if v is not None:
            raise ValueError(f"{path}.value: {op} takes no value")
        return None
    if v is None:
        raise ValueError(f"{path}.value: {op} needs a value")
    if op in LIST_OPS:
        if not isinstance(v, list):
            raise ValueError(f"{path}.value: {op} needs a list")
        return [_coerce(info, x, f"{path}.value[{i}]") for i, x in enumerate(v)]
    if op == "between":
        if not isinstance(v, list) or len(v) != 2:
            raise ValueError(f"{path}.value: between needs [low, high]")
        if info.kind not in ORDERED:
            raise ValueError(f"{path}.op: between needs a number or date field, "
                             f"{info.name!r} is {info.kind}")
        return [_coerce(info, x, f"{path}.value[{i}]") for i, x in enumerate(v)]
    if isinstance(v, list):
        raise ValueError(f"{path}.value: {op} takes one value, not a list")
    if op in ("lt", "le", "gt", "ge") and info.kind not in ORDERED:
        raise ValueError(f"{path}.op: {op} needs a number or date field, "
                         f"{info.name!r} is {info.kind}")
    if op in ("contains", "starts_with"):
        if info.kind != "string":
            raise ValueError(f"{path}.op: {op} needs a string field, {info.name!r} is "
                             f"{info.kind}")
        if not isinstance(v, str):
            raise ValueError(f"{path}.value: {op} needs a string")
        return v
    return _coerce(info, v, f"{path}.value")


def _predicate(p: Predicate, path: str, out: Checked) -> Predicate:
    info = lookup(p.field)
    if info is None:
        out.errors.append(f"{path}.field: unknown field {p.field!r}{suggestion(p.field)}")
        return p
    out.fields.add(p.field)
    try:
        value = _check_value(p, info, path)
    except ValueError as exc:
        out.errors.append(str(exc))
        return p
    if p.op in LIST_OPS and p.op == "in" and not value:
        out.warnings.append(f"{path}: 'in' an empty list matches nothing")
    if p.op == "between" and value[0] > value[1]:
        out.warnings.append(f"{path}: between {value[0]} and {value[1]} matches nothing")
    return p.model_copy(update={"value": value})


def _node(node: Any, path: str, out: Checked) -> Any:
    if isinstance(node, Predicate):
        return _predicate(node, path, out)
    if isinstance(node, NotOf):
        return NotOf(not_=_node(node.not_, f"{path}.not", out))
    key = "all" if isinstance(node, AllOf) else "any"
    children = node.all if isinstance(node, AllOf) else node.any
    if not children:
        out.errors.append(f"{path}.{key}: an empty group; give at least one condition")
        return node
    checked = [_node(c, f"{path}.{key}[{i}]", out) for i, c in enumerate(children)]
    if isinstance(node, AllOf):
        _contradictions(checked, f"{path}.all", out)
        return AllOf(all=checked)
    return AnyOf(any=checked)


def _contradictions(children: list[Any], path: str, out: Checked) -> None:
    """Interval reasoning over the direct predicates of one ``all`` group."""
    from jingxin.audience.interval import Bounds

    bounds: dict[str, Bounds] = {}
    for child in children:
        if isinstance(child, Predicate) and lookup(child.field) is not None:
            b = bounds.setdefault(child.field, Bounds())
            b.add(child.op, child.value)
    for name, b in bounds.items():
        if b.empty():
            out.warnings.append(f"{path}: the conditions on {name!r} contradict each "
                                f"other; the segment matches nothing")


def check(spec: SegmentSpec, *, source: str = "<spec>") -> tuple[SegmentSpec, Checked]:
    """The spec with typed values, and its warnings; SpecError on any error."""
    out = Checked()
    where = _node(spec.where, "where", out) if spec.where is not None else None
    if spec.limit:
        for i, key in enumerate(spec.limit.order_by):
            if lookup(key.field) is None:
                out.errors.append(f"limit.order_by[{i}].field: unknown field "
                                  f"{key.field!r}{suggestion(key.field)}")
            else:
                out.fields.add(key.field)
    if out.errors:
        raise SpecError("\n".join(f"{source}: {e}" for e in out.errors))
    return spec.model_copy(update={"where": where}), out
