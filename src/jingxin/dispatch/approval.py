"""What a sender may send: approved templates and the category each was approved for.

A catalogue template is approved for one category. It may be sent under that category or a
stricter one (``otp`` < ``notification`` < ``marketing``: marketing has the opt-out, quiet
hours, caps and the unsubscribe route), never under a laxer one - a marketing text sent as a
notification would skip all of them. :func:`check_category` is that rule, and every sender
meets it in the delivery entry (:mod:`jingxin.dispatch.deliver`).

:class:`TemplateCache` keeps the compiled approved version of each (tenant, code), so the
single-message path neither reads nor parses a template per message; it looks the approved
version up again every :data:`TEMPLATE_TTL_SECONDS` (an approval, withdrawal or archive is
seen within that) and compiles again only when that version changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jingxin.data.store.models.content import CATEGORIES, STRICTNESS
from jingxin.errors import InputError, TemplateError

if TYPE_CHECKING:
    from jingxin.data.store.engine import Store

TEMPLATE_TTL_SECONDS = 10.0


class CategoryError(InputError):
    """A template sent under a laxer category than the one it was approved for."""


@dataclass(frozen=True, slots=True)
class ApprovedTemplate:
    """A template that may be sent: its code, the category it was approved (or, for a
    campaign's inline body, reviewed) for, and its compiled body."""

    code: str
    category: str
    compiled: Any  # jingxin.content.templates.CompiledTemplate
    template_id: int | None = None
    version: int | None = None


def check_category(*, approved: str, sending: str, what: str) -> None:
    """Refuse sending something approved as ``approved`` under the laxer ``sending``."""
    if sending not in STRICTNESS:
        raise InputError(f"category: unknown category {sending!r} (use {', '.join(CATEGORIES)})")
    if STRICTNESS[sending] < STRICTNESS.get(approved, len(STRICTNESS)):
        raise CategoryError(
            f"category: {what} is approved as {approved}; it cannot be sent as {sending} "
            f"(send it as {approved}, or have a {sending} template approved)"
        )


def load_approved(store: Store, *, tenant_id: str, code: str,
                  compiled: ApprovedTemplate | None = None) -> ApprovedTemplate:  # fmt: skip
    """The approved version of ``code`` compiled; none approved is an InputError (a
    :class:`TemplateError`) naming the template. ``compiled`` is the one compiled before:
    it is returned as it is while its version is still the approved one."""
    from jingxin.content.catalog import approved_version
    from jingxin.content.templates import compile_template

    with store.sessions() as session:
        try:
            template = approved_version(session, tenant_id=tenant_id, code=code)
        except TemplateError as exc:
            raise TemplateError(f"template: {exc}") from exc
        if compiled is not None and (compiled.template_id, compiled.version) == (
            template.id, template.version
        ):
            return compiled
        body, variables = template.body, dict(template.variables or {})
        category, template_id, version = template.category, template.id, template.version
    made = compile_template(body, variables, where=f"template {code}")
    return ApprovedTemplate(code=code, category=category, compiled=made,
                            template_id=template_id, version=version)  # fmt: skip


class TemplateCache:
    """Approved templates by (tenant, code). Each is looked up again after
    :data:`TEMPLATE_TTL_SECONDS` and compiled again only when the approved version changed
    (an approval, a withdrawal, a new version): the compiled body is kept by (tenant,
    code, version)."""

    def __init__(self, *, ttl: float = TEMPLATE_TTL_SECONDS) -> None:
        self._ttl = ttl
        self._kept: dict[tuple[str, str], tuple[float, ApprovedTemplate]] = {}

    def get(self, store: Store, *, tenant_id: str, code: str) -> ApprovedTemplate:
        key = (tenant_id, code)
        kept = self._kept.get(key)
        now = time.monotonic()
        if kept is not None and now - kept[0] < self._ttl:
            return kept[1]
        template = load_approved(store, tenant_id=tenant_id, code=code,
                                 compiled=kept[1] if kept is not None else None)  # fmt: skip
        self._kept[key] = (now, template)
        return template
