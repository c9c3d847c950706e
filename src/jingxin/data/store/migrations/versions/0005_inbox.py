"""The durable MO inbox: mo_parts (one row per MO PDU, committed before it is
acknowledged) and mo_messages (one row per whole, decoded MO).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here rather than imported from the models: a migration is frozen history.
TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mo_messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("msisdn", sa.String(length=20), nullable=False),
        sa.Column("service_number", sa.String(length=21), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("coding", sa.Integer(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("parts_expected", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("undecodable", sa.Boolean(), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("stored_at", TIMESTAMP, nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mo_messages")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_mo_messages_dedup_key")),
    )
    op.create_index(
        "ix_mo_messages_msisdn_received_at", "mo_messages", ["msisdn", "received_at"], unique=False
    )
    op.create_table(
        "mo_parts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("destination", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("coding", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("smsc_id", sa.String(length=64), nullable=True),
        sa.Column("fingerprint", sa.String(length=40), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("mo_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["mo_id"], ["mo_messages.id"], name=op.f("fk_mo_parts_mo_id_mo_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mo_parts")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_mo_parts_dedup_key")),
    )
    op.create_index("ix_mo_parts_mo_id", "mo_parts", ["mo_id"], unique=False)
    op.create_index("ix_mo_parts_fingerprint", "mo_parts", ["fingerprint"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_mo_parts_fingerprint", table_name="mo_parts")
    op.drop_index("ix_mo_parts_mo_id", table_name="mo_parts")
    op.drop_table("mo_parts")
    op.drop_index("ix_mo_messages_msisdn_received_at", table_name="mo_messages")
    op.drop_table("mo_messages")
