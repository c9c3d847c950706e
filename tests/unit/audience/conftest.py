"""Fixtures of the audience tests: the tiny warehouse in an in-memory DuckDB."""

from __future__ import annotations

import pytest
import tiny

from jingxin.data.warehouse.connection import open_duckdb


@pytest.fixture
def warehouse():
    wh = open_duckdb(":memory:")
    tiny.load(wh)
    yield wh
    wh.close()


@pytest.fixture
def featured(warehouse):
    """The tiny warehouse with its features built as of tiny.AS_OF."""
    from jingxin.audience.features import build_features

    build_features(warehouse, as_of=tiny.AS_OF)
    return warehouse


@pytest.fixture(scope="module")
def featured_shared():
    """One featured tiny warehouse per test module, for tests that only read it."""
    from jingxin.audience.features import build_features

    wh = open_duckdb(":memory:")
    tiny.load(wh)
    build_features(wh, as_of=tiny.AS_OF)
    yield wh
    wh.close()
