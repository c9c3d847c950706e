"""ContactState answers policy's questions from the rows loaded for one number."""

from __future__ import annotations

import pytest

from jingxin.data.store.contact import ContactState

STATE = ContactState(
    msisdn="13800000000",
    consents=frozenset({("shop", "marketing")}),
    opt_outs=(("bank", None), (None, "notification")),
    blacklisted_by=frozenset({"spammy"}),
)


@pytest.mark.parametrize(
    ("tenant", "category", "expected"),
    [
        ("bank", "marketing", True),  # tenant opt-out with NULL category covers marketing
        ("bank", "notification", True),  # the global notification opt-out covers every tenant
        ("bank", "otp", False),  # NULL category means marketing only
        ("shop", "marketing", False),  # the bank opt-out does not reach the shop
        ("shop", "notification", True),
    ],
)
def test_opted_out(tenant: str, category: str, expected: bool) -> None:
    assert STATE.opted_out(tenant_id=tenant, category=category) is expected


@pytest.mark.parametrize(
    ("state", "tenant", "expected"),
    [
        (STATE, "spammy", True),
        (STATE, "shop", False),
        (ContactState(msisdn="1", blacklisted_by=frozenset({None})), "shop", True),
        (ContactState(msisdn="1"), "shop", False),
    ],
)
def test_blacklisted(state: ContactState, tenant: str, expected: bool) -> None:
    assert state.blacklisted(tenant_id=tenant) is expected


def test_consent_is_per_tenant_and_category() -> None:
    assert STATE.has_consent(tenant_id="shop", category="marketing")
    assert not STATE.has_consent(tenant_id="shop", category="notification")
    assert not STATE.has_consent(tenant_id="bank", category="marketing")


def test_an_unknown_number_is_in_service_and_unrestricted() -> None:
    state = ContactState(msisdn="13900000000")
    assert state.in_service and not state.complaint_sensitive
    assert not state.opted_out(tenant_id="any", category="marketing")
