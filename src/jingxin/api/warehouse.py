"""The warehouse for a request: read-only, as the CLI opens it, and a 503 that says what to
run first when there is none (segments, campaigns, reports and journeys use it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jingxin.api.errors import ApiError
from jingxin.errors import WarehouseError


@contextmanager
def read_warehouse(settings: Any) -> Iterator[Any]:
    """The settings' warehouse, read-only (an import may hold the DuckDB file meanwhile);
    missing, a 503 saying what to run first. The CLI's ``read_warehouse`` without an
    option: the same file, resolved the same way."""
    from jingxin.data.warehouse.connection import open_duckdb, open_warehouse

    config = settings.warehouse
    try:
        if config.backend != "duckdb":
            wh = open_warehouse(config)
        else:
            target = Path(config.path)
            if not target.is_file():
                raise ApiError(503, "there is no warehouse yet (warehouse.path): load one "
                               "with `jingxin synth` and `jingxin import-dir`, or `jingxin "
                               "import`")  # fmt: skip
            wh = open_duckdb(target, threads=config.threads, memory_limit=config.memory_limit,
                             read_only=True)  # fmt: skip
    except WarehouseError as exc:
        raise ApiError(503, f"the warehouse cannot be opened: {exc}") from None
    try:
        yield wh
    except WarehouseError as exc:
        raise ApiError(503, f"the warehouse cannot answer: {exc}") from None
    finally:
        wh.close()


@contextmanager
def optional_warehouse(settings: Any) -> Iterator[Any]:
    """The settings' warehouse if there is one, else None (a campaign report then leaves
    its breakdowns out, as ``jingxin report campaign`` does)."""
    config = settings.warehouse
    if config.backend == "duckdb" and not Path(config.path).is_file():
        yield None
        return
    with read_warehouse(settings) as wh:
        yield wh
