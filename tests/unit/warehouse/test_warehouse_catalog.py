"""docs/warehouse.md carries the table listing generated from schema.py, kept current."""

from __future__ import annotations

from pathlib import Path

from jingxin.data.warehouse.catalog import schema_markdown, spec_markdown
from jingxin.data.warehouse.schema import TABLES

DOC = Path(__file__).resolve().parents[3] / "docs" / "warehouse.md"


def test_every_table_and_column_is_listed():
    text = schema_markdown()
    for spec in TABLES.values():
        assert f"### {spec.name}\n" in text
        for column in spec.columns:
            assert f"| `{column.name}` | {column.type} |" in spec_markdown(spec)


def test_the_doc_embeds_the_current_listing():
    # Regenerate with: jingxin tables --schema (the doc's last section)
    assert schema_markdown() in DOC.read_text(encoding="utf-8")
