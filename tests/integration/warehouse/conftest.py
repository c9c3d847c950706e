"""Fixtures for warehouse integration tests: a DuckDB file warehouse in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jingxin.data.warehouse.connection import Warehouse, open_duckdb


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "wh" / "warehouse.duckdb"


@pytest.fixture
def warehouse(warehouse_path: Path) -> Iterator[Warehouse]:
    wh = open_duckdb(warehouse_path, threads=1)
    yield wh
    wh.close()
