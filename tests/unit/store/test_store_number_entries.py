"""Every way of writing a number reaches the store as one E.164 text, or one refusal.

The same table of inputs goes through the validator, each contact store function and the
exclusion-file reader, so no entry can drift from the others (issue #11).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from jingxin.data.store import Store, transaction
from jingxin.data.store.contact import (
    add_to_blacklist,
    record_consent,
    record_opt_out,
    remove_from_blacklist,
    revoke_consent,
    update_subscriber_state,
)
from jingxin.data.store.models import BlacklistEntry, Consent, OptOut, SubscriberState
from jingxin.data import validate
from jingxin.data.store.models import contact as contact_models
from jingxin.errors import InputError, SpecError

E164 = "+8613800138000"
SAME_NUMBER = ["13800138000", "+8613800138000", "8613800138000", "008613800138000",
               " 138 0013 8000 ", "138-0013-8000", "+86 138 0013 8000"]  # fmt: skip
NOT_A_NUMBER = [("abc", "not a number"), ("", "empty"), ("12345", "too short"),
                ("1380013800012345", "too long"), ("+12025550123", "foreign"),
                ("02088888888", "not mobile")]  # fmt: skip


@pytest.mark.parametrize("raw", SAME_NUMBER)
def test_every_form_of_one_number_is_the_same_e164(raw: str) -> None:
    assert validate.valid_msisdn(raw) == E164


@pytest.mark.parametrize(("raw", "reason"), NOT_A_NUMBER)
def test_what_is_no_number_is_refused_with_the_field_and_reason(raw: str, reason: str) -> None:
    with pytest.raises(InputError, match=f"^--to: invalid msisdn .*: {reason}$"):
        validate.valid_msisdn(raw, field="--to")


WRITERS = {
    "opt_out": lambda s, n: record_opt_out(s, msisdn=n, source="console"),
    "blacklist": lambda s, n: add_to_blacklist(s, msisdn=n, added_by="t"),
    "consent": lambda s, n: record_consent(s, tenant_id="operator", msisdn=n,
                                           category="marketing", channel="sms", wording="ok"),
    "subscriber": lambda s, n: update_subscriber_state(s, msisdn=n, complaint_sensitive=True),
}  # fmt: skip
TABLES = {"opt_out": OptOut, "blacklist": BlacklistEntry, "consent": Consent,
          "subscriber": SubscriberState}  # fmt: skip


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_store_functions_keep_the_e164_form(store: Store, writer: str) -> None:
    # Given a number typed without +86
    with transaction(store.sessions) as session:
        WRITERS[writer](session, "13800138000")
    # Then the row holds the form policy looks numbers up by
    with store.sessions() as session:
        assert session.scalars(select(TABLES[writer].msisdn)).all() == [E164]


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_store_functions_refuse_what_is_no_number_and_write_nothing(store: Store,
                                                                    writer: str) -> None:
    with pytest.raises(InputError, match="msisdn: invalid msisdn 'abc': not a number"):
        with transaction(store.sessions) as session:
            WRITERS[writer](session, "abc")
    with store.sessions() as session:
        assert session.scalars(select(TABLES[writer].msisdn)).all() == []


def test_removing_and_revoking_find_rows_whatever_the_form(store: Store) -> None:
    # Given a blacklist entry and a consent recorded with +86
    with transaction(store.sessions) as session:
        WRITERS["blacklist"](session, E164)
        WRITERS["consent"](session, E164)
    # When they are removed / revoked naming the number without +86
    with transaction(store.sessions) as session:
        assert remove_from_blacklist(session, msisdn="8613800138000") == 1
        assert revoke_consent(session, tenant_id="operator", msisdn="13800138000") == 1


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda s: record_opt_out(s, msisdn=E164, source="console", category="spam"),
         "opt_out.category: 'spam' is not one of marketing, notification"),
        (lambda s: record_opt_out(s, msisdn=E164, source="fax"), "opt_out.source: 'fax'"),
        (lambda s: record_opt_out(s, msisdn=E164, source="console", tenant_id="ghost"),
         "opt_out.tenant: unknown tenant 'ghost'"),
        (lambda s: add_to_blacklist(s, msisdn=E164, added_by="t", tenant_id="bad id"),
         "blacklist.tenant: 'bad id' is not a tenant id"),
        (lambda s: update_subscriber_state(s, msisdn=E164, roaming_country="ZZ"),
         "subscriber_state.roaming_country: 'ZZ' is not an ISO 3166-1 alpha-2"),
        (lambda s: update_subscriber_state(s, msisdn=E164, timezone="Mars/Base"),
         "subscriber_state.timezone: 'Mars/Base' is not an IANA time zone"),
    ],
)
def test_tenant_category_source_and_country_are_checked_in_the_store(store: Store, call,
                                                                     says: str) -> None:
    with pytest.raises(InputError, match=f"^{says}".replace("(", r"\(")):
        with transaction(store.sessions) as session:
            call(session)


def test_a_country_is_stored_upper_case(store: Store) -> None:
    with transaction(store.sessions) as session:
        state = update_subscriber_state(session, msisdn=E164, roaming_country="us")
        assert state.roaming_country == "US"


def test_the_lists_of_the_models_and_the_validators_agree() -> None:
    # The models keep their own copies for the schema; the validators must not drift.
    assert validate.CONSENT_CATEGORIES == contact_models.CONSENT_CATEGORIES
    assert validate.OPT_OUT_SOURCES == contact_models.OPT_OUT_SOURCES


def test_exclusion_files_use_the_same_normaliser(tmp_path: Path) -> None:
    from jingxin.audience.exclusion import read_exclusions

    # Given every accepted form of one number, one per line
    (tmp_path / "dnc.txt").write_text("\n".join(SAME_NUMBER) + "\n# end\n", encoding="utf-8")
    # Then each reads as the E.164 number the other entries store
    assert read_exclusions(tmp_path / "dnc.txt") == [E164] * len(SAME_NUMBER)
    # And a line that is no number is named with the same reason
    (tmp_path / "bad.csv").write_text("msisdn\n13800138000\n+12025550123\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"bad.csv:3: not a phone number: '\+12025550123' \(foreign\)"):
        read_exclusions(tmp_path / "bad.csv")
