"""Migrations: from empty to head, again without harm, and in step with the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from jingxin.data.store import make_engine, migrate
from jingxin.data.store.models import Base
from jingxin.errors import StoreError

# The contract other areas code against: these names must exist after upgrade.
CONTRACT_TABLES = {
    "tenants",
    "consents",
    "opt_outs",
    "blacklist",
    "subscriber_state",
    "templates",
    "campaigns",
    "messages",
    "receipts",
    "decisions",
    "contact_ledger",
    "audit_log",
}
# Added by migration 0002 (dispatch): parts on the wire, stray receipts, failing numbers.
DISPATCH_TABLES = {"message_parts", "unmatched_receipts", "number_failures"}
# Added by migrations 0005 (the MO inbox), 0006 (what its handlers did) and 0014 (the parts
# not yet known to be acknowledged).
INBOX_TABLES = {"mo_parts", "mo_messages", "mo_outcomes", "mo_unacked"}
HALL_TABLES = {"hall_sessions", "hall_interactions", "hall_orders", "hall_referrals",
               "hall_points", "hall_merchants", "hall_vouchers", "hall_staff", "hall_feedback",
               "hall_complaints", "boss_accounts", "boss_products", "boss_holdings",
               "boss_orders", "probe_runs"}
JOURNEY_TABLES = {"journey_runs", "gift_claims", "journey_enrolments", "journey_events",
                  "work_orders", "work_order_events", "scheduler_locks"}
GEOFENCE_TABLES = {"fences"}
ANALYTICS_TABLES = {"link_clicks", "analytics_events", "experiment_assignments", "event_marks"}
ACCESS_TABLES = {"users", "api_keys", "console_sessions", "callback_endpoints",
                 "callback_deliveries"}


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table(empty_store_url: str) -> None:
    # Given an empty database
    assert migrate.current(empty_store_url) is None
    # When it is upgraded
    revision = migrate.upgrade(empty_store_url)
    # Then it is at head with the contract tables plus Alembic's version table
    assert revision == migrate.head()
    every = (CONTRACT_TABLES | DISPATCH_TABLES | INBOX_TABLES | HALL_TABLES | JOURNEY_TABLES
             | GEOFENCE_TABLES | ANALYTICS_TABLES | ACCESS_TABLES)
    assert table_names(empty_store_url) == every | {"alembic_version"}
    assert set(Base.metadata.tables) == every


def test_upgrade_twice_changes_nothing(empty_store_url: str) -> None:
    migrate.upgrade(empty_store_url)
    before = table_names(empty_store_url)
    assert migrate.upgrade(empty_store_url) == migrate.head()
    assert table_names(empty_store_url) == before


def test_models_match_the_migrations(empty_store_url: str) -> None:
    migrate.upgrade(empty_store_url)
    result = migrate.check(empty_store_url)
    assert result.differences == ()
    assert result.ok


def test_check_reports_a_schema_that_drifted(empty_store_url: str) -> None:
    # Given a database at head from which someone dropped an index by hand
    migrate.upgrade(empty_store_url)
    engine = make_engine(empty_store_url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_opt_outs_msisdn"))
        conn.execute(text("ALTER TABLE opt_outs ADD COLUMN stray INTEGER"))
    engine.dispose()
    # When it is checked
    result = migrate.check(empty_store_url)
    # Then both differences are named
    assert not result.ok
    joined = "\n".join(result.differences)
    assert "add_index ix_opt_outs_msisdn" in joined
    assert "remove_column" in joined and "stray" in joined


def test_check_of_an_empty_database_is_not_ok(empty_store_url: str) -> None:
    result = migrate.check(empty_store_url)
    assert result.current is None
    assert not result.ok


def test_unknown_revision_is_a_store_error(empty_store_url: str) -> None:
    with pytest.raises(StoreError, match="upgrading .* to nosuch failed"):
        migrate.upgrade(empty_store_url, "nosuch")


def test_shipped_migrations_match_models_on_scratch_sqlite() -> None:
    assert migrate.check().ok


def test_0014_enters_the_last_hours_smpp_parts_as_unacknowledged(empty_store_url: str) -> None:
    # Given a store at 0013 holding SMPP parts from a minute and from two hours ago, and a
    # CMPP part (SMSC id) from a minute ago
    migrate.upgrade(empty_store_url, "0013")
    now = datetime.now(UTC)
    engine = make_engine(empty_store_url)
    sqlite = engine.dialect.name == "sqlite"
    rows = [(1, "a" * 40, None, now - timedelta(minutes=1)), (2, "b" * 40, None, now - timedelta(hours=2)),
            (3, "c" * 40, "m-3", now - timedelta(minutes=1))]  # fmt: skip
    try:
        with engine.begin() as conn:
            for part_id, print_, smsc_id, at in rows:
                conn.execute(text(
                    "INSERT INTO mo_parts (id, channel, protocol, source, destination, total, seq,"
                    " coding, payload, smsc_id, fingerprint, dedup_key, received_at) VALUES"
                    " (:id, 'sim', 'smpp', '8613800000001', '10086', 1, 1, 0, :payload, :smsc_id,"
                    " :print, :key, :at)"), {"id": part_id, "payload": b"Y", "smsc_id": smsc_id,
                    "print": print_, "key": f"k{part_id}",
                    "at": at.replace(tzinfo=None).isoformat(" ") if sqlite else at})  # fmt: skip
        # When it is upgraded
        migrate.upgrade(empty_store_url)
        with engine.connect() as conn:
            entered = conn.execute(text("SELECT part_id, fingerprint FROM mo_unacked")).all()
        # Then only the recent SMPP part waits for an acknowledgement it may not have had
        assert [tuple(r) for r in entered] == [(1, "a" * 40)]
        # And the way down drops the table and brings the fingerprint index back
        migrate.downgrade(empty_store_url, "0013")
        assert "mo_unacked" not in table_names(empty_store_url)
        assert "ix_mo_parts_fingerprint" in {i["name"] for i in inspect(engine).get_indexes("mo_parts")}
    finally:
        engine.dispose()
