"""``jingxin users``, ``jingxin keys``, ``jingxin tenants`` end to end on an SQLite store:
the first admin, passwords from standard input or a hidden prompt (never echoed), a key
printed once and alone, revocation, tenants; each command's bad input is one error naming
the option; every change is in the audit log."""

from __future__ import annotations

import json
import shutil

import pytest
import typer
from argon2 import PasswordHasher
from sqlalchemy import select
from typer.testing import CliRunner

from jingxin.access import passwords
from jingxin.errors import ConflictError
from jingxin.access.keys import check_key
from jingxin.access.users import authenticate
from jingxin.cli.access import register
from jingxin.data.store import open_store
from jingxin.data.store.models import AuditEntry
from jingxin.errors import InputError

SECRET = "a password long enough"


@pytest.fixture(scope="module", autouse=True)
def cheap_password_hashes():
    saved = list(passwords._HASHER)
    passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    passwords._HASHER[:] = saved
    passwords._dummy.cache_clear()


@pytest.fixture
def cli(tmp_path, monkeypatch, migrated_templates):
    # Settings from a jingxin.toml in an empty directory: a migrated store there
    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_STORE__URL"):
        monkeypatch.delenv(name, raising=False)
    shutil.copyfile(migrated_templates["sqlite"], tmp_path / "access.db")
    (tmp_path / "jingxin.toml").write_text('[store]\nurl = "sqlite:///access.db"\n',
                                           encoding="utf-8")  # fmt: skip
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    store = open_store(f"sqlite:///{tmp_path / 'access.db'}")

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input)

    yield invoke, store
    store.dispose()


def ok(done) -> str:
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"
    return done.stdout


def refused(done, kind: type[Exception], words: str) -> None:
    assert done.exit_code != 0
    assert isinstance(done.exception, kind), (done.output, done.exception)
    assert words in str(done.exception), str(done.exception)


def audited(store, action: str, object_type: str) -> list[AuditEntry]:
    with store.transaction() as session:
        return list(session.scalars(select(AuditEntry).where(
            AuditEntry.action == action, AuditEntry.object_type == object_type)))


def can_log_in(store, username: str, password: str) -> bool:
    with store.transaction() as session:
        return authenticate(session, username=username, password=password) is not None


# ----------------------------------------------------------------------------- tenants


def test_tenants_add_and_list(cli):
    invoke, store = cli
    out = ok(invoke("tenants", "add", "acme", "--name", "爱客美科技", "--signature", "【爱客美】",
                    "--timezone", "Asia/Urumqi"))  # fmt: skip
    assert "added tenant acme 【爱客美】" in out
    assert "acme" in ok(invoke("tenants", "list")) and "Asia/Urumqi" in ok(invoke("tenants",
                                                                                "list"))
    rows = json.loads(ok(invoke("tenants", "list", "--json")))
    assert [r["id"] for r in rows] == ["acme", "operator"]
    assert audited(store, "create", "tenant")[0].actor.startswith("cli:")


def test_tenants_add_refuses_bad_input_naming_the_option(cli):
    invoke, _ = cli
    base = ["tenants", "add", "beta", "--name", "Beta", "--signature", "【贝塔】"]
    refused(invoke(*base[:2], "Beta!", *base[3:]), InputError, "ID: 2-64 lower-case")
    refused(invoke(*base[:-1], "贝塔"), InputError, "--signature: write the signature in 【】")
    refused(invoke(*base, "--timezone", "Nowhere/Else"), InputError, "--timezone: ")
    ok(invoke(*base))
    refused(invoke(*base), ConflictError, "ID: there is already a tenant 'beta'")


# ----------------------------------------------------------------------------- users


def test_users_add_from_stdin_and_list(cli):
    invoke, store = cli
    out = ok(invoke("users", "add", "Admin", "--role", "admin", "--password-stdin",
                    input=SECRET + "\n"))  # fmt: skip
    assert "added user admin (admin) to tenant operator" in out and SECRET not in out
    assert can_log_in(store, "admin", SECRET)
    table = ok(invoke("users", "list"))
    assert "admin" in table and "enabled" in table
    rows = json.loads(ok(invoke("users", "list", "--json", "--tenant", "operator")))
    assert [(r["username"], r["role"], r["tenant"]) for r in rows] == [
        ("admin", "admin", "operator")]
    assert "argon2" not in json.dumps(rows) and "password" not in rows[0]
    [entry] = audited(store, "create", "user")
    assert entry.detail == {"username": "admin", "role": "admin", "tenant": "operator"}


def test_users_add_prompts_twice_without_echo(cli):
    invoke, store = cli
    done = invoke("users", "add", "li.wei", "--role", "marketer", "--display-name", "李伟",
                  input=f"{SECRET}\n{SECRET}\n")  # fmt: skip
    out = ok(done)
    assert out.count("Password") == 1 and "Repeat for confirmation" in out
    assert SECRET not in done.output
    assert can_log_in(store, "li.wei", SECRET)


def test_users_add_refuses_bad_input(cli):
    invoke, _ = cli
    stdin = SECRET + "\n"
    refused(invoke("users", "add", "x y", "--role", "admin", "--password-stdin", input=stdin),
            InputError, "USERNAME: 2-64 letters")
    refused(invoke("users", "add", "bob", "--role", "boss", "--password-stdin", input=stdin),
            InputError, "--role: unknown role 'boss'")
    refused(invoke("users", "add", "bob", "--role", "admin", "--tenant", "nope",
                   "--password-stdin", input=stdin), InputError, "--tenant: no tenant 'nope'")
    refused(invoke("users", "add", "bob", "--role", "admin", "--password-stdin",
                   input="short\n"), InputError, "--password-stdin: at least 10 characters")
    refused(invoke("users", "add", "bob", "--role", "admin", "--password-stdin", input="\n"),
            InputError, "standard input has no password")
    ok(invoke("users", "add", "bob", "--role", "admin", "--password-stdin", input=stdin))
    refused(invoke("users", "add", "BOB", "--role", "analyst", "--password-stdin", input=stdin),
            ConflictError, "'bob' is taken")


def test_users_passwd_disable_enable(cli):
    invoke, store = cli
    ok(invoke("users", "add", "wang", "--role", "analyst", "--password-stdin",
              input=SECRET + "\n"))  # fmt: skip
    out = ok(invoke("users", "passwd", "wang", "--password-stdin", input="another long one\n"))
    assert "password of wang changed" in out and "another" not in out
    assert can_log_in(store, "wang", "another long one") and not can_log_in(store, "wang", SECRET)
    assert "wang is disabled" in ok(invoke("users", "disable", "wang"))
    assert not can_log_in(store, "wang", "another long one")
    assert "already was" in ok(invoke("users", "disable", "wang"))
    assert "disabled" in ok(invoke("users", "list"))
    assert "wang is enabled" in ok(invoke("users", "enable", "wang"))
    assert can_log_in(store, "wang", "another long one")
    details = [e.detail for e in audited(store, "update", "user")]
    assert details == [{"username": "wang", "password": "changed"},
                       {"username": "wang", "disabled": True},
                       {"username": "wang", "disabled": False}]  # fmt: skip


def test_users_commands_refuse_an_unknown_user(cli):
    invoke, _ = cli
    # No password is asked for when the user does not exist
    refused(invoke("users", "passwd", "ghost"), InputError, "no user 'ghost'")
    refused(invoke("users", "disable", "ghost"), InputError, "no user 'ghost'")
    refused(invoke("users", "enable", "ghost"), InputError, "no user 'ghost'")
    ok(invoke("users", "add", "wang", "--role", "analyst", "--password-stdin",
              input=SECRET + "\n"))  # fmt: skip
    refused(invoke("users", "passwd", "wang", "--password-stdin", input="tiny\n"),
            InputError, "at least 10 characters")
    assert "no users in tenant acme" in ok(invoke("users", "list", "--tenant", "acme"))


# ----------------------------------------------------------------------------- keys


def test_keys_create_prints_the_key_alone_once(cli):
    invoke, store = cli
    done = invoke("keys", "create", "--name", "CRM", "--rate", "20", "--expires-in-days", "30")
    key = ok(done).strip()
    assert done.stdout == key + "\n"  # alone on stdout, for KEY=$(jingxin keys create ...)
    prefix = key.split("_")[1]
    assert f"created key {prefix} (CRM, api-client, tenant operator, 20/s" in done.stderr
    with store.transaction() as session:
        checked = check_key(session, key)
        assert checked.key is not None and checked.key.expires_at is not None
        assert checked.key.created_by.startswith("cli:")
    listed = ok(invoke("keys", "list"))
    assert prefix in listed and key.split("_", 2)[2] not in listed
    rows = json.loads(ok(invoke("keys", "list", "--json")))
    assert rows[0]["prefix"] == prefix and key not in json.dumps(rows)
    [entry] = audited(store, "create", "api_key")
    assert entry.detail["prefix"] == prefix and key not in json.dumps(entry.detail)


def test_keys_create_refuses_bad_input(cli):
    invoke, _ = cli
    refused(invoke("keys", "create", "--name", " "), InputError, "--name: give the key a name")
    refused(invoke("keys", "create", "--name", "k", "--role", "root"), InputError,
            "--role: unknown role")
    refused(invoke("keys", "create", "--name", "k", "--tenant", "nope"), InputError,
            "--tenant: no tenant 'nope'")
    refused(invoke("keys", "create", "--name", "k", "--rate", "0"), InputError, "--rate:")
    refused(invoke("keys", "create", "--name", "k", "--expires-in-days", "0"), InputError,
            "--expires-in-days: at least 1")
    assert "no API keys" in ok(invoke("keys", "list"))


def test_keys_revoke_by_prefix_or_whole_key(cli):
    invoke, store = cli
    first = ok(invoke("keys", "create", "--name", "one")).strip()
    second = ok(invoke("keys", "create", "--name", "two", "--role", "analyst")).strip()
    assert "revoked" in ok(invoke("keys", "revoke", first.split("_")[1]))
    assert "revoked" in ok(invoke("keys", "revoke", second))
    assert "already revoked" in ok(invoke("keys", "revoke", second))
    with store.transaction() as session:
        assert check_key(session, first).problem == "revoked"
        assert check_key(session, second).problem == "revoked"
    assert len(audited(store, "revoke", "api_key")) == 2
    refused(invoke("keys", "revoke", "NOPE1234"), InputError, "no API key with prefix 'NOPE1234'")
