"""``jingxin db``: create, upgrade and check the operational store's schema, and find
(``db check``) and rewrite (``db normalise``, or ``db check --fix``) contact rows whose
number is not stored in E.164.

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
    fix: Annotated[
        bool,
        typer.Option("--fix", help="Rewrite numbers not stored in E.164 (as `db normalise`)."),
    ] = False,
) -> None:
    """Compare the store's tables with the models, and look for numbers not stored in
    E.164; fails on any difference."""
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
    if scratch:
        return
    if fix:
        _normalise(target)
        return
    _check_numbers(target, where)


def _check_numbers(url: str, where: str) -> None:
    from jingxin.data.store import open_store
    from jingxin.data.store.stored_numbers import scan_numbers

    store = open_store(url)
    try:
        with store.transaction() as session:
            scans = scan_numbers(session)
    finally:
        store.dispose()
    fixable = [s for s in scans if s.rewritable]
    if fixable:
        lines = "\n".join(f"  {s.describe()}" for s in fixable)
        raise StoreError(f"{where}: numbers not stored in E.164 (policy does not see them; "
                         f"`jingxin db normalise` rewrites them):\n{lines}")  # fmt: skip
    # A row whose number cannot be read is reported, not failed on: no rewrite can fix it.
    for scan in scans:
        if scan.invalid:
            console.print(f"{where}: warning: {scan.describe()}")
    console.print(f"{where}: every usable contact number is in E.164")


def normalise(url: UrlOption = None) -> None:
    """Rewrite consent, opt-out, blacklist and subscriber rows whose number is not stored
    in E.164 (``13800138000`` → ``+8613800138000``), in one transaction, merging
    duplicates; rows with no usable number are counted and left as they are."""
    _normalise(_store_url(url))


def _normalise(url: str) -> None:
    from jingxin.data.store import open_store, safe_url
    from jingxin.data.store.stored_numbers import normalise_numbers

    store = open_store(url)
    try:
        with store.transaction() as session:
            tally = normalise_numbers(session)
    finally:
        store.dispose()
    per_table = ", ".join(f"{t} {n}" for t, n in tally.rewritten.items() if n) or "none"
    merged = sum(tally.merged.values())
    invalid = sum(tally.invalid.values())
    console.print(f"{safe_url(url)}: rewrote {tally.total} row(s) into E.164 ({per_table}); "
                  f"merged {merged} duplicate(s); {invalid} row(s) hold no usable number "
                  "and were left as they are")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to ``app``."""
    db = typer.Typer(
        help="The operational store: schema upgrades and checks.", no_args_is_help=True
    )
    db.command("upgrade")(upgrade)
    db.command("current")(current)
    db.command("check")(check)
    db.command("normalise")(normalise)
    db.command("downgrade")(downgrade)
    app.add_typer(db, name="db")
