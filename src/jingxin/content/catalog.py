"""The template catalogue over the operational store: versions, review lifecycle, rendering.

Service functions take the session first and everything else by keyword; the caller owns
the transaction. Every status change is written to the audit log. Submitting runs the
automatic content review (:mod:`jingxin.content.review`) on the template's fixed text and
refuses a template the review blocks; a person then approves or rejects it. Only an
approved version renders for sending (:func:`render_for_sending`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jingxin.config import ContentSettings
from jingxin.content.library import TemplateDocument
from jingxin.content.lifecycle import LifecycleError, edit_mode, next_status
from jingxin.content.templates import Rendered, compile_template, render
from jingxin.data.store.audit import record_action
from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import DEFAULT_TENANT_ID, Template, Tenant
from jingxin.errors import TemplateError

if TYPE_CHECKING:
    from jingxin.content.review import Reviewer, ReviewResult

OPEN_STATUSES = ("draft", "submitted")


def describe(template: Template) -> str:
    return f"template #{template.id} ({template.tenant_id}/{template.code} v{template.version})"


def get_template(session: Session, *, template_id: int) -> Template:
    """The template version with this id; an unknown id raises :class:`TemplateError`."""
    with store_errors(f"reading template #{template_id}"):
        template = session.get(Template, template_id)
    if template is None:
        raise TemplateError(f"no template with id {template_id}")
    return template


def list_templates(
    session: Session,
    *,
    tenant_id: str | None = None,
    status: str | None = None,
    code: str | None = None,
) -> list[Template]:
    """Template versions, by tenant, code and version."""
    query = select(Template).order_by(Template.tenant_id, Template.code, Template.version)
    if tenant_id is not None:
        query = query.where(Template.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Template.status == status)
    if code is not None:
        query = query.where(Template.code == code)
    with store_errors("listing templates"):
        return list(session.scalars(query))


def _tenant(session: Session, tenant_id: str) -> Tenant:
    with store_errors(f"reading tenant {tenant_id!r}"):
        tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise TemplateError(f"unknown tenant {tenant_id!r}")
    return tenant


def _next_version(session: Session, tenant_id: str, code: str) -> int:
    query = select(func.max(Template.version)).where(
        Template.tenant_id == tenant_id, Template.code == code
    )
    with store_errors(f"reading versions of {tenant_id}/{code}"):
        return (session.scalar(query) or 0) + 1


def add_template(
    session: Session,
    *,
    document: TemplateDocument,
    tenant_id: str = DEFAULT_TENANT_ID,
    actor: str = "cli",
) -> Template:
    """A new draft version of ``document.code`` (v1 if the code is new).

    Refused while another version of the code is still a draft or submitted.
    """
    _tenant(session, tenant_id)
    document.compile(where=document.code)
    open_versions = [
        t
        for t in list_templates(session, tenant_id=tenant_id, code=document.code)
        if t.status in OPEN_STATUSES
    ]
    if open_versions:
        raise LifecycleError(
            f"{describe(open_versions[0])} is still {open_versions[0].status}: "
            "edit, withdraw or archive it before adding another version"
        )
    template = Template(
        tenant_id=tenant_id,
        code=document.code,
        version=_next_version(session, tenant_id, document.code),
        category=document.category,
        body=document.body,
        variables=dict(document.variables),
        status="draft",
    )
    with store_errors(f"adding template {tenant_id}/{document.code}"):
        session.add(template)
        session.flush()
    detail = {"code": template.code, "version": template.version}
    record_action(
        session,
        actor=actor,
        action="template.add",
        object_type="template",
        object_id=template.id,
        detail=detail,
        tenant_id=template.tenant_id,
    )
    return template


def edit_template(
    session: Session,
    *,
    template_id: int,
    body: str | None = None,
    variables: Mapping[str, str] | None = None,
    actor: str = "cli",
) -> Template:
    """Change a draft in place, or record the edit of an approved/rejected one as a new draft."""
    template = get_template(session, template_id=template_id)
    new_body = template.body if body is None else body
    new_variables = dict(template.variables if variables is None else variables)
    compile_template(new_body, new_variables, where=describe(template))
    if edit_mode(template.status, what=describe(template)) == "in_place":
        template.body, template.variables = new_body, new_variables
        edited = template
    else:
        document = TemplateDocument(
            code=template.code, category=template.category, body=new_body, variables=new_variables
        )
        edited = add_template(session, document=document, tenant_id=template.tenant_id, actor=actor)
    with store_errors(f"editing {describe(template)}"):
        session.flush()
    return edited


@dataclass(frozen=True)
class Submission:
    template: Template
    review: ReviewResult | None


def submit_template(
    session: Session,
    *,
    template_id: int,
    reviewer: Reviewer | None = None,
    actor: str = "cli",
) -> Submission:
    """Draft → submitted, after the automatic review of the fixed text; a block refuses."""
    template = get_template(session, template_id=template_id)
    status = next_status(template.status, "submit", what=describe(template))
    compiled = compile_template(template.body, template.variables, where=describe(template))
    result = None
    if reviewer is not None:
        from jingxin.content.review import review_template

        result = review_template(
            reviewer,
            compiled,
            category=template.category,
            signature=_tenant(session, template.tenant_id).signature,
        )
        if result.verdict == "block":
            reasons = "; ".join(r.describe() for r in result.reasons)
            raise TemplateError(f"{describe(template)} is blocked by content review: {reasons}")
    _move(session, template, status, actor=actor, action="submit")
    return Submission(template=template, review=result)


def approve_template(
    session: Session, *, template_id: int, reviewer: str, reason: str | None = None
) -> Template:
    """Submitted → approved; any older approved version of the code is archived."""
    template = get_template(session, template_id=template_id)
    status = next_status(template.status, "approve", what=describe(template))
    # Checked again here: a version submitted before a check existed (the render budget's
    # worst case, say) must not reach approved without passing it.
    compile_template(template.body, template.variables, where=describe(template))
    for older in list_templates(
        session, tenant_id=template.tenant_id, code=template.code, status="approved"
    ):
        _move(
            session,
            older,
            "archived",
            actor=reviewer,
            action="archive",
            reason=f"superseded by v{template.version}",
        )
    template.reviewer, template.review_reason = reviewer, reason
    _move(session, template, status, actor=reviewer, action="approve", reason=reason)
    return template


def reject_template(session: Session, *, template_id: int, reviewer: str, reason: str) -> Template:
    """Submitted → rejected; the reason is required and kept for the author."""
    if not reason.strip():
        raise TemplateError("a rejection needs a reason")
    template = get_template(session, template_id=template_id)
    status = next_status(template.status, "reject", what=describe(template))
    template.reviewer, template.review_reason = reviewer, reason
    _move(session, template, status, actor=reviewer, action="reject", reason=reason)
    return template


def withdraw_template(session: Session, *, template_id: int, actor: str = "cli") -> Template:
    """Submitted → draft, so the author can edit it again."""
    template = get_template(session, template_id=template_id)
    _move(
        session,
        template,
        next_status(template.status, "withdraw", what=describe(template)),
        actor=actor,
        action="withdraw",
    )
    return template


def archive_template(session: Session, *, template_id: int, actor: str = "cli") -> Template:
    """Draft, approved or rejected → archived (terminal)."""
    template = get_template(session, template_id=template_id)
    _move(
        session,
        template,
        next_status(template.status, "archive", what=describe(template)),
        actor=actor,
        action="archive",
    )
    return template


def _move(
    session: Session,
    template: Template,
    status: str,
    *,
    actor: str,
    action: str,
    reason: str | None = None,
) -> None:
    before = template.status
    template.status = status
    with store_errors(f"{action} of {describe(template)}"):
        session.flush()
    record_action(
        session,
        actor=actor,
        action=f"template.{action}",
        object_type="template",
        object_id=template.id,
        detail={"from": before, "to": status, "reason": reason, "code": template.code},
        tenant_id=template.tenant_id,
    )


def approved_version(session: Session, *, tenant_id: str, code: str) -> Template:
    """The approved version of ``code``; none raises :class:`TemplateError`."""
    approved = list_templates(session, tenant_id=tenant_id, code=code, status="approved")
    if not approved:
        raise TemplateError(f"template {tenant_id}/{code} has no approved version")
    return approved[-1]


def render_template(
    session: Session,
    *,
    template: Template,
    values: Mapping[str, object],
    settings: ContentSettings,
    require_approved: bool = True,
) -> Rendered:
    """Render one version with the tenant's signature; unless previewing, it must be approved."""
    if require_approved and template.status != "approved":
        raise TemplateError(
            f"{describe(template)} is {template.status}: only approved templates send"
        )
    compiled = compile_template(template.body, template.variables, where=describe(template))
    return render(
        compiled,
        values,
        category=template.category,
        signature=_tenant(session, template.tenant_id).signature,
        unsubscribe_text=settings.unsubscribe_text,
        max_parts=settings.max_parts,
        where=describe(template),
    )


def render_for_sending(
    session: Session,
    *,
    tenant_id: str,
    code: str,
    values: Mapping[str, object],
    settings: ContentSettings,
) -> Rendered:
    """The text to send for ``code``: its approved version, rendered; too long raises."""
    template = approved_version(session, tenant_id=tenant_id, code=code)
    rendered = render_template(session, template=template, values=values, settings=settings)
    if rendered.error:
        raise TemplateError(rendered.error)
    return rendered


def seed_library(
    session: Session,
    *,
    documents: list[TemplateDocument],
    tenant_id: str = DEFAULT_TENANT_ID,
    approve_as: str | None = None,
    reviewer: Reviewer | None = None,
) -> list[Template]:
    """Add each document whose code the tenant lacks; with ``approve_as``, also submit and
    approve it in that reviewer's name. Codes already present are left alone."""
    existing = {t.code for t in list_templates(session, tenant_id=tenant_id)}
    added = []
    for document in documents:
        if document.code in existing:
            continue
        template = add_template(session, document=document, tenant_id=tenant_id, actor="seed")
        if approve_as:
            submit_template(session, template_id=template.id, reviewer=reviewer, actor="seed")
            approve_template(
                session, template_id=template.id, reviewer=approve_as, reason="starter library"
            )
        added.append(template)
    return added
