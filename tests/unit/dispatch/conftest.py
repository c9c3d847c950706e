from __future__ import annotations

from collections.abc import Iterator

import pytest

from jingxin.data.store import open_store


@pytest.fixture
def store(tmp_path, migrated_sqlite) -> Iterator:
    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    yield opened
    opened.dispose()
