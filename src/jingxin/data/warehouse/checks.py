"""The row checks of an import, written as DuckDB SQL so that a big file is validated in a
few vectorised scans, never row by row in Python.

For a table spec and the columns a file has, :func:`plan_checks` gives the typed value of
every warehouse column (``TRY_CAST`` of the file's value, the normalised MSISDN, the
derived carrier) and one boolean condition per possible problem: a value that does not
parse, a missing value in a non-nullable column, a value outside the allowed choices, an
unusable phone number. Key duplicates are checked afterwards by the importer, over the
rows that pass these.
"""

from __future__ import annotations

from dataclasses import dataclass

from jingxin.data.warehouse.schema import Column, TableSpec
from jingxin.data.warehouse.tables import duckdb_type, quote
from jingxin.errors import WarehouseError

SRC = "s"  # alias of the source relation in the generated SQL

_TYPE_WORDS = {
    "VARCHAR": "text", "TINYINT": "integer (int8)", "SMALLINT": "integer (int16)",
    "INTEGER": "integer (int32)", "BIGINT": "integer (int64)", "DOUBLE": "number",
    "DATE": "date (YYYY-MM-DD)", "TIMESTAMP": "timestamp (YYYY-MM-DD HH:MM:SS)",
    "BOOLEAN": "boolean (true/false)",
}
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT"}


@dataclass(frozen=True)
class Check:
    """One possible problem: ``condition`` is true for a bad row; ``reason`` is a SQL
    expression (usually a literal) saying what is wrong with ``field``."""

    field: str
    reason: str
    condition: str


@dataclass(frozen=True)
class CheckPlan:
    typed: dict[str, str]  # warehouse column -> SQL expression of its value
    checks: tuple[Check, ...]
    joins: tuple[str, ...]  # LEFT JOINs of the normalised MSISDN relations


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def msisdn_relation(column: str) -> str:
    """The relation (``__row``, e164, carrier, reason) the importer registers with the
    normalised values of an MSISDN column."""
    return f"__import_msisdn_{column}"


def _msisdn_alias(spec: TableSpec, column: str) -> str:
    return f"m{spec.msisdn_columns.index(column)}"


def plan_checks(spec: TableSpec, source_columns: dict[str, str]) -> CheckPlan:
    """The typed values and the checks for ``spec`` over a file with ``source_columns``."""
    typed: dict[str, str] = {}
    checks: list[Check] = []
    joins = [f"LEFT JOIN {msisdn_relation(name)} {_msisdn_alias(spec, name)} "
             f"ON {_msisdn_alias(spec, name)}.__row = {SRC}.__row"
             for name in spec.msisdn_columns]
    for column in spec.columns:
        raw = f"{SRC}.{quote(column.name)}"
        target = duckdb_type(column.type)
        if column.name in spec.derived:
            typed[column.name] = _derived(spec, column)
            continue
        if column.name not in source_columns:  # only nullable columns may be absent
            typed[column.name] = f"CAST(NULL AS {target})"
            continue
        if column.name in spec.msisdn_columns:
            alias = _msisdn_alias(spec, column.name)
            typed[column.name] = f"{alias}.e164"
            reason = f"{alias}.reason"
            checks.append(Check(column.name, f"'invalid msisdn: ' || replace({reason}, '_', ' ')",
                                f"{raw} IS NOT NULL AND {reason} IS NOT NULL"))
        else:
            typed[column.name] = _cast(raw, source_columns[column.name], target)
            if typed[column.name] != raw:
                checks.append(Check(column.name, literal(f"not a valid {_TYPE_WORDS[target]}"),
                                    f"{raw} IS NOT NULL AND {typed[column.name]} IS NULL"))
        if not column.nullable:
            checks.append(Check(column.name, literal("missing value"), f"{raw} IS NULL"))
        if column.choices:
            checks.append(_choice_check(column, typed[column.name]))
    return CheckPlan(typed=typed, checks=tuple(checks), joins=tuple(joins))


def _derived(spec: TableSpec, column: Column) -> str:
    # The only derived column today is the carrier, read from the number range.
    if column.name == "carrier" and spec.msisdn_columns:
        return f"{_msisdn_alias(spec, spec.msisdn_columns[0])}.carrier"
    raise WarehouseError(f"{spec.name}.{column.name}: no rule derives this column")


def _cast(raw: str, source: str, target: str) -> str:
    if source == target:
        return raw
    expr = f"TRY_CAST({raw} AS {target})"
    if target in _INTEGER_TYPES:
        # TRY_CAST rounds '1.5' and 1.5 to 2; an integer column must not take a fraction.
        if source == "VARCHAR":
            return f"CASE WHEN regexp_full_match(trim({raw}), '[+-]?[0-9]+') THEN {expr} END"
        if source not in _INTEGER_TYPES:
            return f"CASE WHEN TRY_CAST({raw} AS DOUBLE) = trunc(TRY_CAST({raw} AS DOUBLE)) " \
                   f"THEN {expr} END"
    return expr


def _choice_check(column: Column, value: str) -> Check:
    assert column.choices
    allowed = ", ".join(literal(c) for c in column.choices)
    return Check(column.name, literal(f"not one of: {', '.join(column.choices)}"),
                 f"{value} IS NOT NULL AND {value} NOT IN ({allowed})")

