"""The template catalogue on a migrated store: SQLite file and PostgreSQL (skips without it)."""

from __future__ import annotations

import pytest

from jingxin.config import ContentSettings
from jingxin.content import catalog
from jingxin.content.library import TemplateDocument, starter_library
from jingxin.data.store import open_store
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.errors import StoreError, TemplateError

DOC = TemplateDocument(
    code="otp.login",
    category="otp",
    body="验证码{{ code }}，5分钟内有效。",
    variables={"code": "code"},
)


def test_lifecycle_and_versions_survive_sessions(store_url: str) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        # Given an approved v1 and an edited v2 written in separate transactions
        with store.transaction() as session:
            ensure_default_tenant(session)
            first = catalog.add_template(session, document=DOC)
            catalog.submit_template(session, template_id=first.id)
            catalog.approve_template(session, template_id=first.id, reviewer="r")
        with store.transaction() as session:
            second = catalog.edit_template(
                session, template_id=first.id, body="您的验证码{{ code }}，请勿告知他人。"
            )
        # Then a new session sends v1 until v2 is approved
        with store.transaction() as session:
            text = catalog.render_for_sending(
                session,
                tenant_id="operator",
                code="otp.login",
                values={"code": "4829"},
                settings=ContentSettings(),
            ).text
            assert text == "【中国移动】验证码4829，5分钟内有效。"
            catalog.submit_template(session, template_id=second.id)
            catalog.approve_template(session, template_id=second.id, reviewer="r")
        with store.transaction() as session:
            text = catalog.render_for_sending(
                session,
                tenant_id="operator",
                code="otp.login",
                values={"code": "4829"},
                settings=ContentSettings(),
            ).text
            assert text == "【中国移动】您的验证码4829，请勿告知他人。"
            statuses = [t.status for t in catalog.list_templates(session, code="otp.login")]
            assert statuses == ["archived", "approved"]
    finally:
        store.dispose()


def test_seed_library_on_a_real_store(store_url: str) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        with store.transaction() as session:
            ensure_default_tenant(session)
            added = catalog.seed_library(session, documents=starter_library(), approve_as="seed")
        with store.transaction() as session:
            assert len(catalog.list_templates(session, status="approved")) == len(added)
    finally:
        store.dispose()


def test_failed_transaction_writes_nothing(store_url: str) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        with pytest.raises(TemplateError), store.transaction() as session:
            ensure_default_tenant(session)
            catalog.add_template(session, document=DOC)
            catalog.approve_template(session, template_id=1, reviewer="r")  # still a draft
        with store.transaction() as session:
            assert catalog.list_templates(session) == []
    finally:
        store.dispose()


def test_duplicate_version_is_a_store_error(store_url: str) -> None:
    from jingxin.data.store.models import Template

    store = open_store(store_url, upgrade=True)
    try:
        with pytest.raises(StoreError, match="duplicate"), store.transaction() as session:
            ensure_default_tenant(session)
            catalog.add_template(session, document=DOC)
            session.add(
                Template(
                    tenant_id="operator",
                    code="otp.login",
                    version=1,
                    category="otp",
                    body="x",
                    variables={},
                )
            )
            session.flush()
    finally:
        store.dispose()
