"""Fixtures for warehouse tests: an in-memory DuckDB warehouse."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jingxin.data.warehouse.connection import Warehouse, open_duckdb


@pytest.fixture
def warehouse() -> Iterator[Warehouse]:
    wh = open_duckdb(":memory:", threads=1)
    yield wh
    wh.close()
