"""Options and argument readers the store-facing commands share: the store URL, a number
(normalised the one way, or refused with one line), a tenant, an instant."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

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
