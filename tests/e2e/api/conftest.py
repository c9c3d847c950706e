"""The API and console under FastAPI's TestClient, on a migrated SQLite store (a copy of
the session's template), with two tenants - the operator and an enterprise, ``acme`` - and
a user and a key of every role in each.

    def test_x(api):
        r = api.as_key("api-client", tenant="acme").post("/api/v1/send", json={...})
        r = api.as_user("marketer").get("/api/v1/campaigns")  # a console session + CSRF

``api.client`` is a client with no credentials. ``api.settings`` / ``api.store`` are the
application's. Password hashing uses cheap argon2 parameters here (stored hashes carry
their own parameters, so nothing else changes).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from argon2 import PasswordHasher
from starlette.exceptions import StarletteDeprecationWarning

from jingxin.access import passwords
from jingxin.access.keys import create_key
from jingxin.access.roles import ROLES
from jingxin.access.sessions import open_session
from jingxin.access.users import create_user
from jingxin.api import create_app
from jingxin.api.auth import CSRF_HEADER, SESSION_COOKIE
from jingxin.config import Settings, StoreSettings
from jingxin.data.store import Store, open_store
from jingxin.data.store.tenants import create_tenant, ensure_default_tenant

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"
ENTERPRISE = "acme"
ENTERPRISE_SIGNATURE = "【爱客美】"


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> None:
    passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class Api:
    settings: Settings
    store: Store
    client: TestClient
    keys: dict[tuple[str, str], str] = field(default_factory=dict)  # (tenant, role) -> key
    users: dict[tuple[str, str], str] = field(default_factory=dict)  # (tenant, role) -> name

    def as_key(self, role: str = "api-client", *, tenant: str = ENTERPRISE) -> TestClient:
        """A client sending the API key of ``role`` in ``tenant``."""
        client = TestClient(self.client.app)
        client.headers["Authorization"] = f"Bearer {self.keys[(tenant, role)]}"
        return client

    def as_user(self, role: str = "admin", *, tenant: str = "operator") -> TestClient:
        """A client with a console session of ``role`` in ``tenant``, CSRF header set."""
        from jingxin.data.store.models import User

        with self.store.transaction() as session:
            user = session.query(User).filter_by(username=self.users[(tenant, role)]).one()
            token, row = open_session(session, user=user, minutes=60)
            csrf = row.csrf_token
        client = TestClient(self.client.app)
        client.cookies.set(SESSION_COOKIE, token)
        client.headers[CSRF_HEADER] = csrf
        return client

    def username(self, role: str, tenant: str = "operator") -> str:
        return self.users[(tenant, role)]


def make_api(url: str, **settings_overrides: Any) -> tuple[Api, TestClient]:
    store = open_store(url)
    settings = Settings(store=StoreSettings(url=url), **settings_overrides)
    with store.transaction() as session:
        ensure_default_tenant(session)
        create_tenant(session, tenant_id=ENTERPRISE, name="爱客美科技",
                      signature=ENTERPRISE_SIGNATURE)  # fmt: skip
        keys: dict[tuple[str, str], str] = {}
        users: dict[tuple[str, str], str] = {}
        for tenant in ("operator", ENTERPRISE):
            for role in ROLES:
                name = f"{tenant}-{role}"
                create_user(session, tenant_id=tenant, username=name, password=PASSWORD,
                            role=role)  # fmt: skip
                users[(tenant, role)] = name
                _, key = create_key(session, tenant_id=tenant, name=f"{name} key", role=role,
                                    rate_per_second=1000.0)  # fmt: skip
                keys[(tenant, role)] = key
    client = TestClient(create_app(settings, store=store))
    return Api(settings=settings, store=store, client=client, keys=keys, users=users), client


@pytest.fixture
def api(tmp_path, migrated_templates) -> Iterator[Api]:
    path = tmp_path / "jingxin.db"
    shutil.copyfile(migrated_templates["sqlite"], path)
    made, client = make_api(f"sqlite:///{path}", home=tmp_path)
    with client:  # runs the lifespan (click recorder) around the test
        yield made
    made.store.dispose()
