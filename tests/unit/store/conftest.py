"""Unit fixtures of the store: an SQLite file in a temporary directory, migrated to head."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jingxin.data.store import Store, open_store


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'jingxin.db'}"


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = open_store(sqlite_url, upgrade=True)
    yield opened
    opened.dispose()
