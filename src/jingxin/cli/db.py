"""``jingxin db``: create, upgrade and check the operational store's schema.

The URL comes from the settings (``store.url``, env ``JINGXIN_STORE__URL``) unless
``--url`` is given; a relative SQLite path is relative to the working directory.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from jingxin.errors import StoreError

console = Console(highlight=False, soft_wrap=True)  # one line per result, for scripts

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Store URL (default: store.url from the settings)."),
]


def _store_url(url: str | None) -> str:
    if url:
        return url
    from jingxin.config import load_settings

    return load_settings().store.url


def upgrade(
    url: UrlOption = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Create or upgrade the store's tables to the newest schema (and the operator tenant)."""
    from jingxin.data.store import migrate, open_store, safe_url
    from jingxin.data.store.tenants import ensure_default_tenant

    target = _store_url(url)
    before = migrate.current(target)
    after = migrate.upgrade(target, revision)
    where = safe_url(target)
    if before == after:
        console.print(f"{where}: already at revision {after}")
    else:
        console.print(f"{where}: upgraded from {before or 'empty'} to revision {after}")
    if after != migrate.head():
        return
    store = open_store(target)
    try:
        with store.transaction() as session:
            tenant = ensure_default_tenant(session)
            console.print(f"default tenant: {tenant.id} {tenant.signature}")
    finally:
        store.dispose()


def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' drops every table.")],
    url: UrlOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Downgrade the store's schema (data in dropped tables is lost)."""
    from jingxin.data.store import migrate, safe_url

    target = _store_url(url)
    where = safe_url(target)
    if not yes:
        question = f"downgrade {where} to {revision}? Dropped tables lose their data"
        typer.confirm(question, abort=True)
    after = migrate.downgrade(target, revision)
    console.print(f"{where}: downgraded to revision {after or 'base (no tables)'}")


def current(url: UrlOption = None) -> None:
    """Print the schema revision the store is at."""
    from jingxin.data.store import migrate, safe_url

    target = _store_url(url)
    revision = migrate.current(target)
    head = migrate.head()
    state = "up to date" if revision == head else f"behind head {head}: run `jingxin db upgrade`"
    console.print(f"{safe_url(target)}: revision {revision or 'none'} ({state})")


def check(
    url: UrlOption = None,
    scratch: Annotated[
        bool,
        typer.Option(
            "--scratch",
            help="Check the shipped migrations against the models on a scratch in-memory "
            "SQLite database instead of the configured store.",
        ),
    ] = False,
) -> None:
    """Compare the store's tables with the models; fails on any difference."""
    from jingxin.data.store import migrate, safe_url

    target = migrate.SCRATCH_URL if scratch else _store_url(url)
    where = "migrations (scratch database)" if scratch else safe_url(target)
    result = migrate.check(target)
    if result.current != result.head:
        raise StoreError(
            f"{where}: at revision {result.current or 'none'}, head is {result.head}; "
            "run `jingxin db upgrade`"
        )
    if result.differences:
        lines = "\n".join(f"  {d}" for d in result.differences)
        raise StoreError(f"{where}: the tables differ from the models:\n{lines}")
    console.print(f"{where}: revision {result.head}, tables match the models")


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to ``app``."""
    db = typer.Typer(
        help="The operational store: schema upgrades and checks.", no_args_is_help=True
    )
    db.command("upgrade")(upgrade)
    db.command("current")(current)
    db.command("check")(check)
    db.command("downgrade")(downgrade)
    app.add_typer(db, name="db")
