"""API routes: templates - the catalogue of the caller's tenant, its review workflow and
the live preview.

The routes call the catalogue's service functions (:mod:`jingxin.content.catalog`), the
ones ``jingxin template ...`` calls, in one transaction per request; those write the audit
log themselves (actor and tenant of the caller). The workflow is
:mod:`jingxin.content.lifecycle`'s: a move the status does not allow (approve a draft, edit
a submitted version) is 409 with its reason; a body that does not compile, or that the
content review blocks at submit, is 422. Editing an approved or rejected version records a
new draft version (its id is in the answer). The tenant's signature is not part of a body:
the delivery entry puts the tenant's own in front of every message, and previews and
reviews show the text with it.

``POST /templates/preview`` is the console's live parts counter (called on every
keystroke): it compiles (cached), renders or shows each variable as ``〇``, composes with
the caller's signature and reviews - microseconds of work beside one store read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, field_validator

from jingxin.access.principal import Principal
from jingxin.api import errors
from jingxin.api.auth import allow, audit
from jingxin.api.errors import ApiError
from jingxin.content.lifecycle import LifecycleError
from jingxin.data.store.models import Template, Tenant
from jingxin.data.store.models.content import TEMPLATE_STATUSES

router = APIRouter(prefix="/api/v1", tags=["templates"])

Category = Literal["otp", "notification", "marketing"]
Status = Literal["draft", "submitted", "approved", "rejected", "archived"]
assert set(TEMPLATE_STATUSES) == set(Status.__args__)  # type: ignore[attr-defined]
MAX_BODY = 10_000  # characters; a six-part SMS is under 1,000
TemplateId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="a template version's id")]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such template in your tenant"},
    409: {"description": "The template's status does not allow this"},
    422: {"description": "The body does not compile, or the content review blocks it"},
}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_blank(body: str | None) -> str | None:
    if body is not None and not body.strip():
        raise ValueError("the body is empty")
    return body


class TemplateIn(_In):
    """A new template: a draft version 1 (or the next version of a code whose versions are
    all approved, rejected or archived)."""

    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                      description="letters, digits, . _ - (e.g. care.birthday)")  # fmt: skip
    category: Category
    body: str = Field(min_length=1, max_length=MAX_BODY,
                      description="Jinja text; line breaks are joined as in template files")
    variables: dict[str, str] = Field(default_factory=dict,
                                      description="name -> type (str, int, float, date, ...)")

    _body = field_validator("body")(lambda body: _not_blank(body))


class TemplateEdit(_In):
    """New body and/or variables (what is left out stays as it is)."""

    body: str | None = Field(default=None, min_length=1, max_length=MAX_BODY)
    variables: dict[str, str] | None = None

    _body = field_validator("body")(lambda body: _not_blank(body))


class Rejection(_In):
    reason: str = Field(min_length=1, max_length=2000, description="kept for the author")


class Approval(_In):
    reason: str | None = Field(default=None, max_length=2000)


class PreviewIn(_In):
    body: str = Field(max_length=MAX_BODY)
    variables: dict[str, str] = Field(default_factory=dict)
    category: Category = "notification"
    values: dict[str, Any] | None = Field(
        default=None, description="sample values: render with them instead of showing "
        "each variable as 〇")  # fmt: skip


class TemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str
    code: str
    version: int
    category: str
    status: str
    body: str
    variables: dict[str, str]
    reviewer: str | None
    review_reason: str | None
    created_at: datetime
    updated_at: datetime


class TemplateList(BaseModel):
    items: list[TemplateOut]
    total: int


class Hit(BaseModel):
    code: str
    severity: str
    message: str
    span: tuple[int, int] | None = None
    excerpt: str | None = None
    category: str | None = None


class Review(BaseModel):
    verdict: Literal["pass", "needs-review", "block"]
    hits: list[Hit]


class Preview(BaseModel):
    text: str = Field(description="as sent: the tenant's signature in front, for marketing "
                      "the unsubscribe route at the end")  # fmt: skip
    chars: int
    parts: int
    encoding: str
    units: int
    remaining: int = Field(description="units still free in the last part")
    sample: bool = Field(description="rendered with values (else each variable is 〇)")
    review: Review


class Submitted(BaseModel):
    template: TemplateOut
    review: Review | None


class Edited(TemplateOut):
    edited_in_place: bool = Field(description="false: the edit is a new draft version (a "
                                  "new id); the approved or rejected one is unchanged")  # fmt: skip


# ------------------------------------------------------------------------------ helpers

_REVIEWER_LOCK = threading.Lock()


def content_reviewer(request: Request) -> Any:
    """The application's :class:`~jingxin.content.review.Reviewer` (built once from the
    ``[content]`` settings: its lexicon automaton is the costly part)."""
    state = request.app.state
    found = getattr(state, "content_reviewer", None)
    if found is None:
        with _REVIEWER_LOCK:
            found = getattr(state, "content_reviewer", None)
            if found is None:
                from jingxin.content.review import build_reviewer

                found = state.content_reviewer = build_reviewer(state.settings.content)
    return found


@contextmanager
def conflicts() -> Iterator[None]:
    """The lifecycle's refusals as 409 (the state conflicts with the request)."""
    try:
        yield
    except LifecycleError as exc:
        raise ApiError(409, str(exc)) from None


def own_template(session: Any, who: Principal, template_id: int) -> Template:
    """The template ``template_id`` of the caller's tenant, else 404 (another tenant's too)."""
    return errors.owned(session, Template, template_id, tenant_id=who.tenant_id,
                        what="template")  # fmt: skip


def operator_reviews(who: Principal) -> bool:
    """The operator's reviewers (and admins) review every tenant's templates: an enterprise's
    template is filed with the operator (模板报备) before it may be sent."""
    return who.operator and who.can("templates.review")


def reviewable_template(session: Any, who: Principal, template_id: int) -> Template:
    """For reading and reviewing: the caller's own, or any tenant's for the operator's
    reviewers; else 404."""
    row = session.get(Template, template_id)
    if row is None or (row.tenant_id != who.tenant_id and not operator_reviews(who)):
        raise errors.not_found("template", template_id)
    return row


def review_out(result: Any) -> Review:
    hits = [Hit(code=r.code, severity=r.severity, message=r.message, category=r.category,
                span=r.span, excerpt=result.text[r.span[0]:r.span[1]] if r.span else None)
            for r in result.reasons]  # fmt: skip
    return Review(verdict=result.verdict, hits=hits)


def _out(row: Template) -> TemplateOut:
    return TemplateOut.model_validate(row)


# ------------------------------------------------------------------------------- routes


@router.get("/templates", response_model=TemplateList,
            responses={404: {"model": None, "description": "no such tenant (or not yours to read)"}})
def list_templates(
    request: Request,
    status: Status | None = Query(default=None, description="only this status"),
    code: str | None = Query(default=None, max_length=64, description="only this code"),
    tenant: str | None = Query(default=None, max_length=64, description=(
        "another tenant's templates: for the operator's reviewers, who review every "
        "enterprise's templates")),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=2**31),
    who: Principal = Depends(allow("templates.read")),
) -> TemplateList:
    """The template versions of your tenant, by code and version (the operator's reviewers
    may name another ``tenant``: its submitted templates wait for them)."""
    from jingxin.content.catalog import list_templates as listed

    if tenant is not None and tenant != who.tenant_id and not operator_reviews(who):
        raise errors.not_found("tenant", tenant)
    with request.app.state.store.transaction() as session:
        rows = listed(session, tenant_id=tenant or who.tenant_id, status=status, code=code)
        return TemplateList(items=[_out(r) for r in rows[offset:offset + limit]],
                            total=len(rows))  # fmt: skip


@router.post("/templates", response_model=TemplateOut, status_code=201, responses=ERRORS)
def create_template(body: TemplateIn, request: Request,
                    who: Principal = Depends(allow("templates.write"))) -> TemplateOut:  # fmt: skip
    """Add a template as a draft. Refused (409) while another version of the code is still
    a draft or submitted: edit, withdraw or archive that one."""
    from jingxin.content.catalog import add_template
    from jingxin.content.library import TemplateDocument

    document = TemplateDocument(code=body.code, category=body.category, body=body.body,
                                variables=body.variables)  # fmt: skip
    with request.app.state.store.transaction() as session, conflicts():
        return _out(add_template(session, document=document, tenant_id=who.tenant_id,
                                 actor=who.actor))  # fmt: skip


@router.post("/templates/preview", response_model=Preview, responses={422: ERRORS[422]})
def preview_template(body: PreviewIn, request: Request,
                     who: Principal = Depends(allow("templates.read"))) -> Preview:  # fmt: skip
    """The text as it would be sent (your signature in front, the unsubscribe route for
    marketing), its parts, encoding and characters, and the content review's verdict with
    each hit's span - the same functions as ``jingxin review --template``. Without
    ``values`` each variable is shown as ``〇``. Changes nothing."""
    from jingxin.content.library import join_lines
    from jingxin.content.review import review_template
    from jingxin.content.templates import compile_template

    compiled = compile_template(join_lines(body.body), body.variables, where="body")
    with request.app.state.store.transaction() as session:
        tenant = session.get(Tenant, who.tenant_id)
        signature = tenant.signature if tenant is not None else None
    result = review_template(content_reviewer(request), compiled, category=body.category,
                             signature=signature, values=body.values, where="values")  # fmt: skip
    parts = result.parts
    return Preview(text=result.text, chars=len(result.text), parts=parts.parts,
                   encoding=parts.encoding, units=parts.units, remaining=parts.remaining,
                   sample=body.values is not None, review=review_out(result))  # fmt: skip


@router.get("/templates/{template_id:int}", response_model=TemplateOut, responses=ERRORS)
def get_template(template_id: TemplateId, request: Request,
                 who: Principal = Depends(allow("templates.read"))) -> TemplateOut:  # fmt: skip
    """One template version (any tenant's for the operator's reviewers)."""
    with request.app.state.store.transaction() as session:
        return _out(reviewable_template(session, who, template_id))


@router.put("/templates/{template_id:int}", response_model=Edited, responses=ERRORS)
def edit_template(template_id: TemplateId, body: TemplateEdit, request: Request,
                  who: Principal = Depends(allow("templates.write"))) -> Edited:  # fmt: skip
    """Edit a template: a draft changes in place; an approved or rejected version stays as
    it was reviewed and the edit becomes a new draft version (``edited_in_place`` false, a
    new ``id``). A submitted version must be withdrawn first (409); archived ones refuse."""
    from jingxin.content.catalog import edit_template as edit
    from jingxin.content.library import join_lines

    with request.app.state.store.transaction() as session, conflicts():
        own_template(session, who, template_id)
        edited = edit(session, template_id=template_id,
                      body=None if body.body is None else join_lines(body.body),
                      variables=body.variables, actor=who.actor)  # fmt: skip
        in_place = edited.id == template_id
        audit(session, who, "template.edit", "template", template_id,
              {"in_place": in_place, "version_id": edited.id, "code": edited.code})  # fmt: skip
        return Edited(**_out(edited).model_dump(), edited_in_place=in_place)


@router.post("/templates/{template_id}/submit", response_model=Submitted, responses=ERRORS)
def submit_template(template_id: TemplateId, request: Request,
                    who: Principal = Depends(allow("templates.write"))) -> Submitted:  # fmt: skip
    """Submit a draft for review. The automatic content review runs first on its fixed text
    (with your signature); a block refuses it (422, naming each reason)."""
    from jingxin.content.catalog import submit_template as submit

    reviewer = content_reviewer(request)
    with request.app.state.store.transaction() as session, conflicts():
        own_template(session, who, template_id)
        done = submit(session, template_id=template_id, reviewer=reviewer, actor=who.actor)
        return Submitted(template=_out(done.template),
                         review=review_out(done.review) if done.review else None)  # fmt: skip


@router.post("/templates/{template_id}/approve", response_model=TemplateOut, responses=ERRORS)
def approve_template(template_id: TemplateId, request: Request, body: Approval | None = None,
                     who: Principal = Depends(allow("templates.review"))) -> TemplateOut:  # fmt: skip
    """Approve a submitted template (a reviewer's right; the operator's reviewers approve
    every tenant's); the code's older approved version is archived. Only an approved
    version can be sent."""
    from jingxin.content.catalog import approve_template as approve

    with request.app.state.store.transaction() as session, conflicts():
        reviewable_template(session, who, template_id)
        return _out(approve(session, template_id=template_id, reviewer=who.actor,
                            reason=body.reason if body else None))  # fmt: skip


@router.post("/templates/{template_id}/reject", response_model=TemplateOut, responses=ERRORS)
def reject_template(template_id: TemplateId, body: Rejection, request: Request,
                    who: Principal = Depends(allow("templates.review"))) -> TemplateOut:  # fmt: skip
    """Reject a submitted template with a reason, kept for the author."""
    from jingxin.content.catalog import reject_template as reject

    with request.app.state.store.transaction() as session, conflicts():
        reviewable_template(session, who, template_id)
        return _out(reject(session, template_id=template_id, reviewer=who.actor,
                           reason=body.reason))  # fmt: skip


@router.post("/templates/{template_id}/withdraw", response_model=TemplateOut, responses=ERRORS)
def withdraw_template(template_id: TemplateId, request: Request,
                      who: Principal = Depends(allow("templates.write"))) -> TemplateOut:  # fmt: skip
    """Take a submitted template back to draft, to edit it."""
    from jingxin.content.catalog import withdraw_template as withdraw

    with request.app.state.store.transaction() as session, conflicts():
        own_template(session, who, template_id)
        return _out(withdraw(session, template_id=template_id, actor=who.actor))


@router.post("/templates/{template_id}/archive", response_model=TemplateOut, responses=ERRORS)
def archive_template(template_id: TemplateId, request: Request,
                     who: Principal = Depends(allow("templates.write"))) -> TemplateOut:  # fmt: skip
    """Archive a draft, approved or rejected version: it can no longer be sent."""
    from jingxin.content.catalog import archive_template as archive

    with request.app.state.store.transaction() as session, conflicts():
        own_template(session, who, template_id)
        return _out(archive(session, template_id=template_id, actor=who.actor))
