"""The template status machine."""

from __future__ import annotations

import itertools

import pytest

from jingxin.content.lifecycle import TRANSITIONS, edit_mode, next_status
from jingxin.errors import TemplateError

STATUSES = ("draft", "submitted", "approved", "rejected", "archived")
ACTIONS = ("submit", "approve", "reject", "withdraw", "archive")
LEGAL = {
    ("draft", "submit"): "submitted",
    ("submitted", "approve"): "approved",
    ("submitted", "reject"): "rejected",
    ("submitted", "withdraw"): "draft",
    ("draft", "archive"): "archived",
    ("approved", "archive"): "archived",
    ("rejected", "archive"): "archived",
}


@pytest.mark.parametrize(("status", "action"), list(itertools.product(STATUSES, ACTIONS)))
def test_every_status_action_pair(status: str, action: str) -> None:
    if (status, action) in LEGAL:
        assert next_status(status, action) == LEGAL[(status, action)]
    else:
        with pytest.raises(TemplateError, match=f"is {status}: cannot {action}"):
            next_status(status, action)


def test_table_is_exactly_the_documented_one() -> None:
    assert TRANSITIONS == LEGAL


@pytest.mark.parametrize(
    ("status", "mode"),
    [("draft", "in_place"), ("approved", "new_version"), ("rejected", "new_version")],
)
def test_edit_modes(status: str, mode: str) -> None:
    assert edit_mode(status) == mode


@pytest.mark.parametrize(("status", "hint"), [("submitted", "withdraw it first"), ("archived", "")])
def test_no_edit_of_submitted_or_archived(status: str, hint: str) -> None:
    with pytest.raises(TemplateError, match=f"cannot be edited{'; ' + hint if hint else ''}"):
        edit_mode(status)
