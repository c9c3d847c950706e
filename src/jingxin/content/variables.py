"""Declared template variables: their types and the pydantic check run before rendering.

A template declares every variable it uses with a type name (``str``, ``int``, ``float``,
``decimal``, ``date``, ``url``, ``msisdn``, ``code``). Values arrive from the API, a
campaign row or the CLI (as strings) and are validated here, so a wrong value is refused
with the variable's name before anything is rendered or sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, ValidationError, create_model

from jingxin.errors import TemplateError

_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(?::\d+)?(?:/\S*)?$")
_MSISDN = re.compile(r"^(?:\+?86)?1\d{10}$")
_CODE = re.compile(r"^[A-Za-z0-9]{2,12}$")


def _url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError("must be an http(s) URL without spaces")
    return value


def _msisdn(value: str) -> str:
    digits = value.replace(" ", "").replace("-", "")
    if not _MSISDN.match(digits):
        raise ValueError("must be an 11-digit Chinese mobile number starting with 1")
    return digits[-11:]


def _code(value: str) -> str:
    if not _CODE.match(value):
        raise ValueError("must be 2-12 letters or digits")
    return value


VARIABLE_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "decimal": Decimal,
    "date": date,
    "url": Annotated[str, AfterValidator(_url)],
    "msisdn": Annotated[str, AfterValidator(_msisdn)],
    "code": Annotated[str, AfterValidator(_code)],
}


def check_declarations(variables: Mapping[str, str], *, where: str = "template") -> None:
    """Refuse a declaration whose type is unknown or whose name is not an identifier."""
    for name, type_name in variables.items():
        if not str(name).isidentifier() or str(name).startswith("_"):
            raise TemplateError(f"{where}: variable name {name!r} is not a plain identifier")
        if type_name not in VARIABLE_TYPES:
            known = ", ".join(VARIABLE_TYPES)
            raise TemplateError(
                f"{where}: variable {name!r} has unknown type {type_name!r} (known: {known})"
            )


@lru_cache(maxsize=1024)
def _model(declared: tuple[tuple[str, str], ...]) -> Any:
    fields: dict[str, Any] = {name: (VARIABLE_TYPES[kind], ...) for name, kind in declared}
    config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    return create_model("TemplateValues", __config__=config, **fields)  # type: ignore[call-overload]


def validate_values(
    variables: Mapping[str, str], values: Mapping[str, object], *, where: str = "template"
) -> dict[str, Any]:
    """Typed values for ``variables``; a missing, unknown or mistyped one → TemplateError."""
    model = _model(tuple(sorted(variables.items())))
    try:
        checked = model.model_validate(dict(values))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "?"
            if err["type"] == "missing":
                problems.append(f"missing variable {name!r}")
            elif err["type"] == "extra_forbidden":
                problems.append(f"unknown variable {name!r} (not declared)")
            else:
                kind = variables.get(name, "?")
                problems.append(
                    f"variable {name!r} ({kind}): {err['msg']}, got {err.get('input')!r}"
                )
        raise TemplateError(f"{where}: " + "; ".join(problems)) from exc
    return {name: getattr(checked, name) for name in variables}
