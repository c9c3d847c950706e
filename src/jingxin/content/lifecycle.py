"""The life of a template version: which action moves it from which status to which.

::

    draft ──submit──► submitted ──approve──► approved ──archive──► archived
      ▲  │                │  └────reject───► rejected ──archive──┘
      │  └──archive──►    └──withdraw──► draft
      └── edit of an approved or rejected version creates a NEW draft version

Only an approved version can be rendered for sending. Pure: the store service
(:mod:`jingxin.content.catalog`) asks :func:`next_status` before it writes anything. A move
the template's status does not allow is a :class:`LifecycleError` (a TemplateError: the CLI
shows it as one line; the API answers it 409, the state conflicting with the request).
"""

from __future__ import annotations

from typing import Literal

from jingxin.errors import TemplateError

Status = Literal["draft", "submitted", "approved", "rejected", "archived"]
Action = Literal["submit", "approve", "reject", "withdraw", "archive"]

TRANSITIONS: dict[tuple[str, str], str] = {
    ("draft", "submit"): "submitted",
    ("submitted", "approve"): "approved",
    ("submitted", "reject"): "rejected",
    ("submitted", "withdraw"): "draft",
    ("draft", "archive"): "archived",
    ("approved", "archive"): "archived",
    ("rejected", "archive"): "archived",
}

# Editing: a draft changes in place; approved and rejected versions stay as they were
# (they are the record of what was reviewed) and the edit becomes a new draft version.
EDIT_IN_PLACE = frozenset({"draft"})
EDIT_AS_NEW_VERSION = frozenset({"approved", "rejected"})


class LifecycleError(TemplateError):
    """An action the template's status does not allow (approve a draft, edit a submitted
    version, add a version while another is still open)."""


def next_status(status: str, action: str, *, what: str = "template") -> str:
    """The status after ``action``; an illegal move raises :class:`LifecycleError`."""
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == status)
        hint = f"; from {status} you may: {', '.join(allowed)}" if allowed else ""
        raise LifecycleError(f"{what} is {status}: cannot {action}{hint}") from None


def edit_mode(status: str, *, what: str = "template") -> Literal["in_place", "new_version"]:
    """How an edit of a version in ``status`` is recorded; submitted/archived refuse edits."""
    if status in EDIT_IN_PLACE:
        return "in_place"
    if status in EDIT_AS_NEW_VERSION:
        return "new_version"
    raise LifecycleError(
        f"{what} is {status}: it cannot be edited"
        + ("; withdraw it first" if status == "submitted" else "")
    )
