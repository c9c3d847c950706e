"""``jingxin users``, ``jingxin keys``, ``jingxin tenants``: who may use the console and
the API, from the server's shell (the first admin is made here).

- ``jingxin users add NAME --role R [--tenant T] [--display-name D] [--password-stdin]``,
  ``users list [--tenant T] [--json]``, ``users passwd NAME [--password-stdin]``,
  ``users disable NAME``, ``users enable NAME``;
- ``jingxin keys create --name N [--role R] [--tenant T] [--rate R] [--expires-in-days D]``
  (the key alone on standard output, shown this once), ``keys list [--tenant T] [--json]``,
  ``keys revoke PREFIX``;
- ``jingxin tenants add ID --name N --signature 【S】 [--implied-consent] [--timezone Z]``,
  ``tenants list [--json]``.

Passwords are read from standard input (``--password-stdin``, the first line) or typed
at a hidden prompt, twice; never taken as an option (it would sit in the shell's history
and the process list). The rules are those of the API (:mod:`jingxin.access`); every
change is in the audit log, the actor ``cli:<account>``. Bad input is one line naming
the option (the app's entry point prints our errors that way, exit code 2).
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.cli.arguments import UrlOption
from jingxin.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from jingxin.data.store import Store

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

users_app = typer.Typer(help="Console users: add, list, set passwords, disable, enable.",
                        no_args_is_help=True)  # fmt: skip
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants: the operator and the enterprises sending through it.",
                          no_args_is_help=True)  # fmt: skip

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.")]
TenantFilter = Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")]
UsernameArgument = Annotated[str, typer.Argument(help="The log-in name.", show_default=False)]
PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from standard input (its first line) "
    "instead of prompting.")]  # fmt: skip


@contextmanager
def _store(url: str | None) -> Iterator[Store]:
    """The store (upgraded to the shipped schema, with the operator tenant in it)."""
    from jingxin.cli.arguments import open_cli_store
    from jingxin.data.store.tenants import ensure_default_tenant

    store = open_cli_store(url)
    try:
        with store.transaction() as session:
            ensure_default_tenant(session)
        yield store
    finally:
        store.dispose()


@contextmanager
def _session(url: str | None) -> Iterator[Session]:
    """One transaction on the store."""
    with _store(url) as store, store.transaction() as session:
        yield session


@contextmanager
def _naming(**options: str) -> Iterator[None]:
    """The domain's refusals, naming our options: ``"name: ..."`` becomes ``"--name: ..."``."""
    try:
        yield
    except InputError as exc:
        head, sep, rest = str(exc).partition(":")
        if not sep or head not in options:
            raise
        raise type(exc)(options[head] + ":" + rest) from exc


def _record(session: Session, action: str, object_type: str, object_id: object,
            tenant_id: str, detail: dict[str, Any]) -> None:
    from jingxin.data.store.audit import record_action

    record_action(session, actor=f"cli:{getpass.getuser()}", action=action,
                  object_type=object_type, object_id=str(object_id), detail=detail,
                  tenant_id=tenant_id)  # fmt: skip


def _password(from_stdin: bool) -> str:
    """The new password: standard input's first line, or typed twice at a hidden prompt."""
    from jingxin.access.passwords import check_password

    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InputError("--password-stdin: standard input has no password (one line)")
        return check_password(line, field="--password-stdin")
    typed = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return check_password(typed, field="password")


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _user(session: Session, username: str) -> Any:
    from jingxin.access.users import get_user

    user = get_user(session, username=username)
    if user is None:
        raise InputError(f"no user {username!r} (see `jingxin users list`)")
    return user


# ----------------------------------------------------------------------------- users


@users_app.command("add")
def users_add(
    username: UsernameArgument,
    role: Annotated[str, typer.Option("--role", help="admin, marketer, reviewer, analyst, "
                                      "auditor or api-client.", show_default=False)],
    tenant: TenantOption = "operator",
    display_name: Annotated[str, typer.Option("--display-name", help="Shown in the "
                                              "console (default: the username).")] = "",
    password_stdin: PasswordStdin = False,
    url: UrlOption = None,
) -> None:
    """Add a console user (the password is prompted for, or read with --password-stdin)."""
    from jingxin.errors import ConflictError
    from jingxin.access.roles import check_role
    from jingxin.access.users import check_username, create_user, get_user
    from jingxin.data.store.tenants import get_tenant

    name = check_username(username, field="USERNAME")  # refuse before asking for a password
    check_role(role, field="--role")
    with _store(url) as store:
        with store.transaction() as session:
            if get_tenant(session, tenant_id=tenant) is None:
                raise InputError(f"--tenant: no tenant {tenant!r} (see `jingxin tenants list`)")
            if get_user(session, username=name) is not None:
                raise ConflictError(f"USERNAME: {name!r} is taken")
        password = _password(password_stdin)
        with _naming(display_name="--display-name"), store.transaction() as session:
            user = create_user(session, tenant_id=tenant, username=name, password=password,
                               role=role, display_name=display_name)  # fmt: skip
            _record(session, "create", "user", user.id, tenant,
                    {"username": user.username, "role": role, "tenant": tenant})  # fmt: skip
    console.print(f"added user {user.username} ({role}) to tenant {tenant}")


@users_app.command("list")
def users_list(tenant: TenantFilter = None, as_json: JsonOption = False,
               url: UrlOption = None) -> None:
    """Console users, by username (every tenant's unless --tenant)."""
    from jingxin.access.users import list_users

    with _session(url) as session:
        rows = [{"id": u.id, "username": u.username, "display_name": u.display_name,
                 "role": u.role, "tenant": u.tenant_id, "disabled": u.disabled,
                 "created_at": _iso(u.created_at), "last_login_at": _iso(u.last_login_at)}
                for u in list_users(session, tenant_id=tenant)]  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        console.print("no users" + (f" in tenant {tenant}" if tenant else ""))
        return
    table = Table("id", "username", "name", "role", "tenant", "state", "last log-in (UTC)",
                  title=f"{len(rows)} users")  # fmt: skip
    for r in rows:
        last = r["last_login_at"][:16].replace("T", " ") if r["last_login_at"] else "-"
        table.add_row(str(r["id"]), Text(r["username"]), Text(r["display_name"]), r["role"],
                      r["tenant"], "disabled" if r["disabled"] else "enabled", last)  # fmt: skip
    console.print(table)


@users_app.command("passwd")
def users_passwd(username: UsernameArgument, password_stdin: PasswordStdin = False,
                 url: UrlOption = None) -> None:
    """Set a user's password (their open sessions are closed)."""
    from jingxin.access.users import update_user

    with _store(url) as store:
        with store.transaction() as session:
            _user(session, username)  # an unknown name: say so before asking for a password
        password = _password(password_stdin)
        with store.transaction() as session:
            user = _user(session, username)
            update_user(session, user=user, password=password)
            _record(session, "update", "user", user.id, user.tenant_id,
                    {"username": user.username, "password": "changed"})  # fmt: skip
    console.print(f"password of {user.username} changed; their sessions are closed")


def _set_disabled(username: str, disabled: bool, url: str | None) -> None:
    from jingxin.access.users import update_user

    with _session(url) as session:
        user = _user(session, username)
        changed = update_user(session, user=user, disabled=disabled)
        if changed:
            _record(session, "update", "user", user.id, user.tenant_id,
                    {"username": user.username, **changed})  # fmt: skip
    state = "disabled" if disabled else "enabled"
    console.print(f"{user.username} is {state}" + ("" if changed else " (it already was)"))


@users_app.command("disable")
def users_disable(username: UsernameArgument, url: UrlOption = None) -> None:
    """Disable a user: they cannot log in, their open sessions end."""
    _set_disabled(username, True, url)


@users_app.command("enable")
def users_enable(username: UsernameArgument, url: UrlOption = None) -> None:
    """Enable a disabled user again."""
    _set_disabled(username, False, url)


# ----------------------------------------------------------------------------- keys


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="What uses the key (e.g. CRM).",
                                      show_default=False)],
    role: Annotated[str, typer.Option("--role", help="The key's role.")] = "api-client",
    tenant: TenantOption = "operator",
    rate: Annotated[float | None, typer.Option(
        "--rate", help="Requests a second (default: [api] key_rate_per_second).")] = None,
    expires_in_days: Annotated[int | None, typer.Option(
        "--expires-in-days", help="Expire after this many days (default: never).")] = None,
    url: UrlOption = None,
) -> None:
    """Create an API key: printed once, alone on standard output (store it now)."""
    from jingxin.access.keys import create_key
    from jingxin.config import load_settings
    from jingxin.data.store.models import utc_now

    if expires_in_days is not None and expires_in_days < 1:
        raise InputError(f"--expires-in-days: at least 1 (got {expires_in_days})")
    if rate is None:
        rate = load_settings().api.key_rate_per_second
    elif not rate > 0:
        raise InputError(f"--rate: must be more than 0 (got {rate:g})")
    expires = utc_now() + timedelta(days=expires_in_days) if expires_in_days else None
    with _naming(name="--name", role="--role", tenant="--tenant", rate_per_second="--rate"), \
            _session(url) as session:
        row, key = create_key(session, tenant_id=tenant, name=name, role=role,
                              rate_per_second=rate, expires_at=expires,
                              created_by=f"cli:{getpass.getuser()}")  # fmt: skip
        _record(session, "create", "api_key", row.id, tenant,
                {"prefix": row.prefix, "name": row.name, "role": role, "tenant": tenant,
                 "rate_per_second": rate, "expires_at": _iso(expires)})  # fmt: skip
    err_console.print(f"created key {row.prefix} ({row.name}, {role}, tenant {tenant}, "
                      f"{rate:g}/s, expires {_when(expires)}); it is shown this once:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(tenant: TenantFilter = None, as_json: JsonOption = False,
              url: UrlOption = None) -> None:
    """API keys, newest first: prefix, name, role, rate, dates (never the key)."""
    from jingxin.access.keys import list_keys

    with _session(url) as session:
        keys = list_keys(session, tenant_id=tenant)
    if as_json:
        rows = [{"id": k.id, "prefix": k.prefix, "name": k.name, "role": k.role,
                 "tenant": k.tenant_id, "rate_per_second": k.rate_per_second,
                 "created_by": k.created_by, "created_at": _iso(k.created_at),
                 "expires_at": _iso(k.expires_at), "revoked_at": _iso(k.revoked_at),
                 "last_used_at": _iso(k.last_used_at)} for k in keys]  # fmt: skip
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not keys:
        console.print("no API keys" + (f" in tenant {tenant}" if tenant else ""))
        return
    table = Table("prefix", "name", "role", "tenant", "rate/s", "created (UTC)", "expires",
                  "revoked", "last used", title=f"{len(keys)} API keys")  # fmt: skip
    for k in keys:
        table.add_row(k.prefix, Text(k.name), k.role, k.tenant_id, f"{k.rate_per_second:g}",
                      _when(k.created_at), _when(k.expires_at), _when(k.revoked_at),
                      _when(k.last_used_at))  # fmt: skip
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (as `keys list` shows it) "
                                          "or the whole key.", show_default=False)],
    url: UrlOption = None,
) -> None:
    """Revoke a key: refused from now on (by a running server within a few seconds)."""
    from jingxin.access.keys import find_key, revoke_key, split_key

    wanted = split_key(prefix) or prefix
    with _session(url) as session:
        row = find_key(session, tenant_id=None, prefix=wanted)
        if row is None:
            raise InputError(f"no API key with prefix {wanted!r} (see `jingxin keys list`)")
        already = row.revoked_at is not None
        revoke_key(session, key_id=row.id, tenant_id=None)
        if not already:
            _record(session, "revoke", "api_key", row.id, row.tenant_id,
                    {"prefix": row.prefix, "name": row.name, "tenant": row.tenant_id})  # fmt: skip
    console.print(f"key {row.prefix} ({row.name}) " + ("was already revoked" if already
                                                       else "revoked"))  # fmt: skip


# ----------------------------------------------------------------------------- tenants


@tenants_app.command("add")
def tenants_add(
    tenant_id: Annotated[str, typer.Argument(metavar="ID", help="A slug: a-z, 0-9, '-'.",
                                             show_default=False)],
    name: Annotated[str, typer.Option("--name", help="The enterprise's name.",
                                      show_default=False)],
    signature: Annotated[str, typer.Option("--signature", help="Its signature, e.g. 【爱客美】.",
                                           show_default=False)],
    implied_consent: Annotated[bool, typer.Option(
        "--implied-consent", help="Its subscribers consented by contract.")] = False,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone.")] = "Asia/Shanghai",
    url: UrlOption = None,
) -> None:
    """Add an enterprise tenant."""
    from jingxin.access.tenants import add_tenant

    with _naming(id="ID", name="--name", signature="--signature", timezone="--timezone"), \
            _session(url) as session:
        row = add_tenant(session, tenant_id=tenant_id, name=name, signature=signature,
                         implied_consent=implied_consent, timezone=timezone)  # fmt: skip
        _record(session, "create", "tenant", row.id, row.id,
                {"name": row.name, "signature": row.signature,
                 "implied_consent": implied_consent, "timezone": timezone})  # fmt: skip
    console.print(Text(f"added tenant {row.id} {row.signature} ({row.name})"))


@tenants_app.command("list")
def tenants_list(as_json: JsonOption = False, url: UrlOption = None) -> None:
    """Every tenant, by id."""
    from jingxin.data.store.tenants import list_tenants

    with _session(url) as session:
        rows = [{"id": t.id, "name": t.name, "signature": t.signature,
                 "implied_consent": t.implied_consent, "timezone": t.timezone,
                 "created_at": _iso(t.created_at)} for t in list_tenants(session)]  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("id", "name", "signature", "implied consent", "time zone",
                  title=f"{len(rows)} tenants")  # fmt: skip
    for r in rows:
        table.add_row(r["id"], Text(r["name"]), Text(r["signature"]),
                      "yes" if r["implied_consent"] else "no", r["timezone"])  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
    app.add_typer(tenants_app, name="tenants")
