"""``jingxin callbacks``: enterprises' callback URLs and the queue of what is pushed there.

- ``jingxin callbacks set TENANT URL [--kinds receipt,mo] [--rotate] [--disable]``: create
  or change a tenant's endpoint; the signing secret is printed once (on create, or with
  ``--rotate``);
- ``jingxin callbacks delete TENANT``;
- ``jingxin callbacks list``: endpoints (never their secrets) and their deliveries by state;
- ``jingxin callbacks deliveries [--tenant T] [--state S]``: the queue, newest first;
- ``jingxin callbacks run [--once]``: collect and push until stopped;
- ``jingxin callbacks retry [--dead] [--tenant T]``: make deliveries backing off due now;
  ``--dead`` also brings dead ones back.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jingxin.cli.arguments import settings_and_store

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
callbacks_app = typer.Typer(help="Receipts and MO pushed to enterprises' callback URLs.",
                            no_args_is_help=True)  # fmt: skip


@callbacks_app.command("set")
def set_command(
    tenant: Annotated[str, typer.Argument(help="The tenant whose callbacks these are.")],
    url: Annotated[str, typer.Argument(help="The http(s) URL to POST to.")],
    kinds: Annotated[str, typer.Option("--kinds", help="receipt, mo or receipt,mo.")] = "receipt,mo",
    rotate: Annotated[bool, typer.Option("--rotate", help="Make a new signing secret.")] = False,
    disable: Annotated[bool, typer.Option("--disable", help="Keep it, but send nothing.")] = False,
) -> None:
    """Create or change a tenant's callback endpoint (the secret is shown once)."""
    from jingxin.callbacks import set_endpoint
    from jingxin.data.store.audit import record_action

    settings, store = settings_and_store()
    try:
        with store.transaction() as session:
            made = set_endpoint(session, tenant_id=tenant, url=url, kinds=kinds.split(","),
                                enabled=not disable, rotate=rotate,
                                production=settings.serve.environment == "production")  # fmt: skip
            record_action(session, actor="cli", action="callbacks.set",
                          object_type="callback_endpoint", object_id=tenant,
                          detail={"url": made.endpoint.url, "kinds": made.endpoint.kinds,
                                  "enabled": made.endpoint.enabled, "rotated": rotate},
                          tenant_id=tenant)  # fmt: skip
    finally:
        store.dispose()
    row = made.endpoint
    state = "" if row.enabled else " (disabled)"
    console.print(f"{'created' if made.created else 'updated'} the callback endpoint of "
                  f"{tenant}: {row.url} [{row.kinds}]{state}", markup=False)  # fmt: skip
    if made.secret is not None:
        console.print(f"secret (shown once): {made.secret}", markup=False)
    else:
        console.print(f"{tenant} keeps its secret (--rotate for a new one)", markup=False)


@callbacks_app.command("delete")
def delete_command(tenant: Annotated[str, typer.Argument(help="The tenant.")]) -> None:
    """Remove a tenant's endpoint (its pending deliveries wait for a new one)."""
    from jingxin.callbacks import delete_endpoint
    from jingxin.data.store.audit import record_action
    from jingxin.errors import InputError

    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            if not delete_endpoint(session, tenant_id=tenant):
                raise InputError(f"tenant: {tenant!r} has no callback endpoint")
            record_action(session, actor="cli", action="callbacks.delete",
                          object_type="callback_endpoint", object_id=tenant, tenant_id=tenant)
    finally:
        store.dispose()
    console.print(f"removed the callback endpoint of {tenant}", markup=False)


@callbacks_app.command("list")
def list_command() -> None:
    """Every endpoint (no secrets) and its deliveries by state."""
    from jingxin.callbacks import list_endpoints
    from jingxin.callbacks.queue import counts

    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            endpoints = list_endpoints(session)
            by_state = counts(session)
    finally:
        store.dispose()
    if not endpoints and not by_state:
        console.print("no callback endpoints")
        return
    table = Table("tenant", "url", "kinds", "enabled", "pending", "delivered", "dead",
                  title="callback endpoints")  # fmt: skip
    shown = set()
    for row in endpoints:
        n = by_state.get(row.tenant_id, {})
        shown.add(row.tenant_id)
        table.add_row(row.tenant_id, row.url, row.kinds, "yes" if row.enabled else "no",
                      *(str(n.get(s, 0)) for s in ("pending", "delivered", "dead")))  # fmt: skip
    for tenant, n in sorted(by_state.items()):
        if tenant not in shown:
            table.add_row(tenant, "(none)", "-", "-",
                          *(str(n.get(s, 0)) for s in ("pending", "delivered", "dead")))
    console.print(table)


@callbacks_app.command("deliveries")
def deliveries_command(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id.")],
    state: Annotated[str | None, typer.Option("--state", help="pending, delivered or dead.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
) -> None:
    """A tenant's deliveries, newest first."""
    from jingxin.callbacks import list_deliveries

    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            rows, total = list_deliveries(session, tenant_id=tenant, state=state, limit=limit)
    finally:
        store.dispose()
    table = Table("id", "event", "state", "attempts", "next attempt", "last status",
                  "last error", title=f"{tenant}: {len(rows)} of {total} deliveries")  # fmt: skip
    for row in rows:
        table.add_row(str(row.id), row.event_key, row.state, str(row.attempts),
                      row.next_attempt_at.isoformat(timespec="seconds") if row.state == "pending" else "-",
                      str(row.last_status or "-"), (row.last_error or "-")[:60])  # fmt: skip
    console.print(table)


@callbacks_app.command("run")
def run_command(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[float, typer.Option(
        "--interval", min=0.05, help="Seconds between passes when there is nothing to do.")] = 1.0,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64, help="Endpoints POSTed to at once.")] = 8,
) -> None:
    """Collect new receipts and MO and push what is due, until Ctrl-C (or once). A store
    that fails is retried after --interval; the rows a failed pass held are due again
    when their lease ends."""
    import signal
    import threading

    from jingxin.callbacks import Pump
    from jingxin.errors import StoreError

    settings, store = settings_and_store()
    stop = threading.Event()
    if not once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    try:
        with Pump(store=store, api=settings.api, workers=workers) as pump:
            while True:
                try:
                    collected, report = pump.run_once()
                except StoreError as exc:
                    if once:
                        raise
                    console.print(f"the store failed, trying again in {interval:g} s: {exc}",
                                  markup=False)  # fmt: skip
                    stop.wait(interval)
                    if stop.is_set():
                        break
                    continue
                if once or collected or report.claimed:
                    states = ", ".join(f"{n} {s}" for s, n in sorted(report.states.items()))
                    deferred = f", {report.deferred} deferred" if report.deferred else ""
                    console.print(f"{sum(collected.values())} collected; "
                                  f"{states or 'nothing due'}{deferred}", markup=False)  # fmt: skip
                if once or stop.is_set():
                    break
                if report.claimed < settings.api.callback_batch:
                    stop.wait(interval)  # a full batch: go again at once
                if stop.is_set():
                    break
    finally:
        store.dispose()


@callbacks_app.command("retry")
def retry_command(
    dead: Annotated[bool, typer.Option("--dead", help="Also re-queue dead deliveries.")] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's.")] = None,
) -> None:
    """Make deliveries waiting out a back-off due now (and, with --dead, dead ones)."""
    from jingxin.callbacks import requeue

    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            changed = requeue(session, tenant_id=tenant, dead=dead)
    finally:
        store.dispose()
    console.print(f"{changed} re-queued")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(callbacks_app, name="callbacks")
