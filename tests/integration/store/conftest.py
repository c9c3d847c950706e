"""Integration fixtures of the store: the same tests on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jingxin.data.store import Store, open_store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store at ``store_url`` migrated to head."""
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()
