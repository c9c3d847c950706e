"""Options and argument readers the store-facing commands share: the store URL, a number
(normalised the one way, or refused with one line), a tenant, an instant."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

# Tables keep whole numbers and keys when piped (rich would squeeze them to 80 columns).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

UrlOption = Annotated[str | None, typer.Option("--url", help="Store URL (default: store.url).")]
MsisdnOption = Annotated[
    str, typer.Option("--msisdn", help="The number, e.g. 13812345678 or +8613812345678.")
]
TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.")]
AtOption = Annotated[
    str | None, typer.Option("--at", help="Decide as of this ISO instant (default: now).")
]


def settings_and_store(*, upgrade: bool = True):
    """The settings and the store they name (upgraded to the shipped schema by default):
    for commands that need both, such as the worker's and the inbox's."""
    from jingxin.config import load_settings
    from jingxin.data.store import open_store

    settings = load_settings()
    return settings, open_store(settings.store.url, upgrade=upgrade)


def open_cli_store(url: str | None):
    """The store at ``url``, or the settings' (upgraded to the shipped schema)."""
    from jingxin.config import load_settings
    from jingxin.data.store import open_store

    return open_store(url or load_settings().store.url, upgrade=True)


def number(raw: str, field: str = "--msisdn") -> str:
    """The E.164 form every store row uses, or one line saying why ``raw`` is no number."""
    from jingxin.data.validate import valid_msisdn

    return valid_msisdn(raw, field=field)


def instant(text: str | None, field: str = "--at") -> datetime:
    """The instant an option names (bare times in the operator's zone), or now."""
    from jingxin.cli.instants import parse_instant

    return datetime.now(UTC) if text is None else parse_instant(text, option=field)


def with_store(url: str | None, work) -> None:
    """Run ``work(session)`` in one transaction of the store at ``url`` (or the settings')."""
    store = open_cli_store(url)
    try:
        with store.transaction() as session:
            work(session)
    finally:
        store.dispose()


@contextmanager
def read_warehouse(settings: Any, path: Path | None) -> Iterator[Any]:
    """The warehouse a command only reads: ``--warehouse`` (a DuckDB file), else the
    settings'. A DuckDB file is opened read-only (an import may hold it meanwhile); a
    missing one is one line naming the option or setting and what to run first."""
    from jingxin.data.warehouse.connection import open_duckdb, open_warehouse
    from jingxin.errors import WarehouseError

    config = settings.warehouse
    if path is None and config.backend != "duckdb":
        wh = open_warehouse(config)
    else:
        target = path or Path(config.path)
        if not target.is_file():
            option = "--warehouse" if path is not None else "warehouse.path"
            raise WarehouseError(f"{option}: no warehouse at {target} (run `jingxin synth`"
                                 " and `jingxin import-dir`, or `jingxin import`, first)")
        wh = open_duckdb(target, threads=config.threads, memory_limit=config.memory_limit,
                         read_only=True)  # fmt: skip
    try:
        yield wh
    finally:
        wh.close()
