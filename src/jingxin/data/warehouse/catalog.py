"""The warehouse contract (schema.py) written out for people, as Markdown: one table of
columns per warehouse table, with keys, phone-number columns, derived columns and allowed
values. ``jingxin tables --schema`` prints it; docs/warehouse.md embeds it."""

from __future__ import annotations

from jingxin.data.warehouse.schema import TABLES, TableSpec


def spec_markdown(spec: TableSpec) -> str:
    lines = [f"### {spec.name}", "", spec.doc, ""]
    if spec.key:
        lines += [f"Key: `{', '.join(spec.key)}` (unique).", ""]
    lines += ["| column | type | nullable | notes |", "| --- | --- | --- | --- |"]
    for column in spec.columns:
        notes = [column.doc] if column.doc else []
        if column.name in spec.msisdn_columns:
            notes.append("msisdn, normalised to E.164 on import")
        if column.name in spec.derived:
            notes.append("derived on import (a file need not carry it)")
        if column.choices:
            notes.append("one of " + ", ".join(f"`{c}`" for c in column.choices))
        nullable = "yes" if column.nullable else ""
        lines.append(f"| `{column.name}` | {column.type} | {nullable} | {'; '.join(notes)} |")
    return "\n".join(lines) + "\n"


def schema_markdown() -> str:
    return "\n".join(spec_markdown(spec) for spec in TABLES.values())
