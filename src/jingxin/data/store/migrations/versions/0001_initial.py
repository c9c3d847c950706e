"""The initial tables: tenants, contact, content, messages and audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 19:11:30.753759
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here rather than imported from the models: a migration is frozen history.
TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=False),
        sa.Column("detail", JSON_DOC, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index(
        "ix_audit_log_object_type_object_id",
        "audit_log",
        ["object_type", "object_id"],
        unique=False,
    )
    op.create_table(
        "blacklist",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("msisdn", sa.String(length=20), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=100), nullable=False),
        sa.Column("added_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blacklist")),
        sa.UniqueConstraint("msisdn", "tenant_id", name=op.f("uq_blacklist_msisdn_tenant_id")),
    )
    op.create_index(
        "uq_blacklist_msisdn_global",
        "blacklist",
        ["msisdn"],
        unique=True,
        sqlite_where=sa.text("tenant_id IS NULL"),
        postgresql_where=sa.text("tenant_id IS NULL"),
    )
    op.create_table(
        "contact_ledger",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("msisdn", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("contact_at", TIMESTAMP, nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_ledger")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_contact_ledger_idempotency_key")),
    )
    op.create_index(
        "ix_contact_ledger_msisdn_contact_at",
        "contact_ledger",
        ["msisdn", "contact_at"],
        unique=False,
    )
    op.create_table(
        "decisions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("msisdn", sa.String(length=20), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("send_at", TIMESTAMP, nullable=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("detail", JSON_DOC, nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index(
        "ix_decisions_msisdn_decided_at", "decisions", ["msisdn", "decided_at"], unique=False
    )
    op.create_table(
        "messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("msisdn", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("lane", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("scheduled_at", TIMESTAMP, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("smsc_ids", JSON_DOC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_messages_idempotency_key")),
    )
    op.create_index(op.f("ix_messages_campaign_id"), "messages", ["campaign_id"], unique=False)
    op.create_index(op.f("ix_messages_msisdn"), "messages", ["msisdn"], unique=False)
    op.create_index(
        "ix_messages_state_lane_scheduled_at",
        "messages",
        ["state", "lane", "scheduled_at"],
        unique=False,
    )
    op.create_table(
        "opt_outs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("msisdn", sa.String(length=20), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=16), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opt_outs")),
    )
    op.create_index(op.f("ix_opt_outs_msisdn"), "opt_outs", ["msisdn"], unique=False)
    op.create_table(
        "subscriber_state",
        sa.Column("msisdn", sa.String(length=20), nullable=False),
        sa.Column("in_service", sa.Boolean(), nullable=False),
        sa.Column("complaint_sensitive", sa.Boolean(), nullable=False),
        sa.Column("last_complaint_at", TIMESTAMP, nullable=True),
        sa.Column("roaming_country", sa.String(length=2), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("invalid_since", TIMESTAMP, nullable=True),
        sa.Column("invalid_reason", sa.String(length=200), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("msisdn", name=op.f("pk_subscriber_state")),
    )
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("implied_consent", sa.Boolean(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("settings", JSON_DOC, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "consents",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("msisdn", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("wording", sa.Text(), nullable=False),
        sa.Column("given_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_consents_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index(
        "ix_consents_tenant_id_msisdn", "consents", ["tenant_id", "msisdn"], unique=False
    )
    op.create_table(
        "receipts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("message_id", BIG_ID, nullable=True),
        sa.Column("smsc_message_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_receipts_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
    )
    op.create_index(op.f("ix_receipts_message_id"), "receipts", ["message_id"], unique=False)
    op.create_index(
        op.f("ix_receipts_smsc_message_id"), "receipts", ["smsc_message_id"], unique=False
    )
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("variables", JSON_DOC, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=100), nullable=True),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_templates_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint(
            "tenant_id", "code", "version", name=op.f("uq_templates_tenant_id_code_version")
        ),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("spec", JSON_DOC, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["template_id"], ["templates.id"], name=op.f("fk_campaigns_template_id_templates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_tenant_id"), "campaigns", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_campaigns_tenant_id"), table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_table("templates")
    op.drop_index(op.f("ix_receipts_smsc_message_id"), table_name="receipts")
    op.drop_index(op.f("ix_receipts_message_id"), table_name="receipts")
    op.drop_table("receipts")
    op.drop_index("ix_consents_tenant_id_msisdn", table_name="consents")
    op.drop_table("consents")
    op.drop_table("tenants")
    op.drop_table("subscriber_state")
    op.drop_index(op.f("ix_opt_outs_msisdn"), table_name="opt_outs")
    op.drop_table("opt_outs")
    op.drop_index("ix_messages_state_lane_scheduled_at", table_name="messages")
    op.drop_index(op.f("ix_messages_msisdn"), table_name="messages")
    op.drop_index(op.f("ix_messages_campaign_id"), table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_decisions_msisdn_decided_at", table_name="decisions")
    op.drop_table("decisions")
    op.drop_index("ix_contact_ledger_msisdn_contact_at", table_name="contact_ledger")
    op.drop_table("contact_ledger")
    op.drop_index(
        "uq_blacklist_msisdn_global",
        table_name="blacklist",
        sqlite_where=sa.text("tenant_id IS NULL"),
        postgresql_where=sa.text("tenant_id IS NULL"),
    )
    op.drop_table("blacklist")
    op.drop_index("ix_audit_log_object_type_object_id", table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
