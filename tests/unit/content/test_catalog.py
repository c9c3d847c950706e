"""The template catalogue over an in-memory SQLite store: versions, lifecycle, rendering."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from jingxin.config import ContentSettings
from jingxin.content import catalog
from jingxin.content.lexicon import build_lexicon
from jingxin.content.library import TemplateDocument, starter_library
from jingxin.content.review import Reviewer
from jingxin.data.store import open_store
from jingxin.data.store.audit import list_actions
from jingxin.data.store.models import Base
from jingxin.data.store.tenants import create_tenant, ensure_default_tenant
from jingxin.errors import TemplateError

SETTINGS = ContentSettings()
REVIEWER = Reviewer(lexicon=build_lexicon())
DOC = TemplateDocument(
    code="care.hello",
    category="marketing",
    body="{{ name }}，送您{{ mb|data_size }}流量。",
    variables={"name": "str", "mb": "int"},
)


@pytest.fixture
def session() -> Iterator[Session]:
    store = open_store("sqlite://")
    Base.metadata.create_all(store.engine)
    try:
        with store.transaction() as s:
            ensure_default_tenant(s)
            yield s
    finally:
        store.dispose()


def _approved(session: Session, document: TemplateDocument = DOC) -> int:
    template = catalog.add_template(session, document=document)
    catalog.submit_template(session, template_id=template.id, reviewer=REVIEWER)
    catalog.approve_template(session, template_id=template.id, reviewer="王审核")
    return template.id


def test_full_lifecycle_renders_only_once_approved(session: Session) -> None:
    # Given a new draft
    template = catalog.add_template(session, document=DOC)
    assert (template.version, template.status) == (1, "draft")
    # Then it cannot be sent yet
    with pytest.raises(TemplateError, match="no approved version"):
        catalog.render_for_sending(
            session,
            tenant_id="operator",
            code="care.hello",
            values={"name": "李女士", "mb": 2048},
            settings=SETTINGS,
        )
    # When submitted (automatic review) and approved
    submission = catalog.submit_template(session, template_id=template.id, reviewer=REVIEWER)
    assert submission.review is not None and submission.review.verdict == "pass"
    catalog.approve_template(session, template_id=template.id, reviewer="王审核", reason="ok")
    # Then it renders with the tenant's signature and the unsubscribe route
    rendered = catalog.render_for_sending(
        session,
        tenant_id="operator",
        code="care.hello",
        values={"name": "李女士", "mb": 2048},
        settings=SETTINGS,
    )
    assert rendered.text == "【中国移动】李女士，送您2GB流量。回T退订"
    assert template.reviewer == "王审核"
    actions = [
        a.action for a in list_actions(session, object_type="template", object_id=template.id)
    ]
    assert set(actions) == {"template.add", "template.submit", "template.approve"}


def test_reject_needs_reason_and_is_recorded(session: Session) -> None:
    template = catalog.add_template(session, document=DOC)
    catalog.submit_template(session, template_id=template.id)
    with pytest.raises(TemplateError, match="needs a reason"):
        catalog.reject_template(session, template_id=template.id, reviewer="王", reason=" ")
    catalog.reject_template(session, template_id=template.id, reviewer="王", reason="措辞夸大")
    assert (template.status, template.review_reason) == ("rejected", "措辞夸大")


@pytest.mark.parametrize(
    ("steps", "action", "message"),
    [
        ([], catalog.approve_template, "is draft: cannot approve"),
        (["submit", "approve"], catalog.submit_template, "is approved: cannot submit"),
        (["archive"], catalog.archive_template, "is archived: cannot archive"),
        (["submit"], catalog.archive_template, "is submitted: cannot archive"),
    ],
)
def test_illegal_transitions_raise(
    session: Session, steps: list[str], action, message: str
) -> None:
    template = catalog.add_template(session, document=DOC)
    for step in steps:
        if step == "submit":
            catalog.submit_template(session, template_id=template.id)
        elif step == "approve":
            catalog.approve_template(session, template_id=template.id, reviewer="r")
        else:
            catalog.archive_template(session, template_id=template.id)
    kwargs = {"reviewer": "r"} if action is catalog.approve_template else {}
    with pytest.raises(TemplateError, match=message):
        action(session, template_id=template.id, **kwargs)


def test_editing_an_approved_template_makes_a_new_draft_version(session: Session) -> None:
    # Given an approved v1
    first = _approved(session)
    # When edited
    edited = catalog.edit_template(
        session, template_id=first, body="{{ name }}，再送您{{ mb|data_size }}。"
    )
    # Then v2 is a draft and v1 still sends unchanged
    assert (edited.version, edited.status) == (2, "draft")
    assert catalog.get_template(session, template_id=first).status == "approved"
    # When v2 is approved, v1 is archived
    catalog.submit_template(session, template_id=edited.id)
    catalog.approve_template(session, template_id=edited.id, reviewer="r")
    assert catalog.get_template(session, template_id=first).status == "archived"
    assert catalog.approved_version(session, tenant_id="operator", code=DOC.code).version == 2


def test_draft_edits_in_place_and_blocks_a_second_open_version(session: Session) -> None:
    template = catalog.add_template(session, document=DOC)
    catalog.edit_template(session, template_id=template.id, body="{{ name }}您好")
    assert template.body == "{{ name }}您好" and template.version == 1
    with pytest.raises(TemplateError, match="still draft"):
        catalog.add_template(session, document=DOC)
    with pytest.raises(TemplateError, match="undeclared variable 'x'"):
        catalog.edit_template(session, template_id=template.id, body="{{ x }}")


def test_submit_is_refused_when_review_blocks(session: Session) -> None:
    bad = TemplateDocument(code="bad", category="notification", body="兼职刷单，日赚千元")
    template = catalog.add_template(session, document=bad)
    with pytest.raises(TemplateError, match="blocked by content review.*兼职刷单"):
        catalog.submit_template(session, template_id=template.id, reviewer=REVIEWER)
    assert template.status == "draft"


def test_preview_of_draft_and_refusal_to_send_it(session: Session) -> None:
    template = catalog.add_template(session, document=DOC)
    preview = catalog.render_template(
        session,
        template=template,
        values={"name": "a", "mb": 1},
        settings=SETTINGS,
        require_approved=False,
    )
    assert preview.text.startswith("【中国移动】")
    with pytest.raises(TemplateError, match="only approved templates send"):
        catalog.render_template(
            session, template=template, values={"name": "a", "mb": 1}, settings=SETTINGS
        )


def test_too_long_for_sending_raises(session: Session) -> None:
    long_doc = TemplateDocument(
        code="long", category="notification", body="{{ s }}", variables={"s": "str"}
    )
    _approved(session, long_doc)
    with pytest.raises(TemplateError, match="parts"):
        catalog.render_for_sending(
            session, tenant_id="operator", code="long", values={"s": "长" * 500}, settings=SETTINGS
        )


def test_tenant_signature_is_used_and_unknown_tenant_refused(session: Session) -> None:
    create_tenant(session, tenant_id="shop", name="好物商城", signature="好物商城")
    doc = TemplateDocument(code="order", category="notification", body="订单已确认")
    template = catalog.add_template(session, document=doc, tenant_id="shop")
    preview = catalog.render_template(
        session, template=template, values={}, settings=SETTINGS, require_approved=False
    )
    assert preview.text == "【好物商城】订单已确认"
    with pytest.raises(TemplateError, match="unknown tenant 'nobody'"):
        catalog.add_template(session, document=doc, tenant_id="nobody")


def test_unknown_template_id(session: Session) -> None:
    with pytest.raises(TemplateError, match="no template with id 999"):
        catalog.get_template(session, template_id=999)


def test_seed_library_is_idempotent_and_approves(session: Session) -> None:
    library = starter_library()
    added = catalog.seed_library(session, documents=library, approve_as="seed", reviewer=REVIEWER)
    assert len(added) == len(library)
    assert {t.status for t in added} == {"approved"}
    assert catalog.seed_library(session, documents=library) == []
