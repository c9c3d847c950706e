from __future__ import annotations

from collections.abc import Iterator

import pytest

from jingxin.data.store import open_store


@pytest.fixture
def store(tmp_path) -> Iterator:
    opened = open_store(f"sqlite:///{tmp_path / 'jx.db'}", upgrade=True)
    yield opened
    opened.dispose()
