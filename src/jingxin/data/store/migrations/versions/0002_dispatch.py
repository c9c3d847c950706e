"""Dispatch: message parts, unmatched receipts, number failures; per-state times on messages.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here rather than imported from the models: a migration is frozen history.
TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _message_columns() -> list[sa.Column]:
    return [
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unresolved", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("worker", sa.String(length=64), nullable=True),
        sa.Column("submitting_at", TIMESTAMP, nullable=True),
        sa.Column("submitted_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    for column in _message_columns():
        op.add_column("messages", column)
    op.create_table(
        "message_parts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("message_id", BIG_ID, nullable=False),
        sa.Column("part_no", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("smsc_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("submitted_at", TIMESTAMP, nullable=False),
        sa.Column("receipt_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_parts_message_id_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_parts")),
        sa.UniqueConstraint(
            "message_id", "part_no", name=op.f("uq_message_parts_message_id_part_no")
        ),
    )
    op.create_index(
        "ix_message_parts_smsc_id", "message_parts", ["smsc_id"], unique=False
    )
    op.create_table(
        "unmatched_receipts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("smsc_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("matched_at", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unmatched_receipts")),
    )
    op.create_index(
        op.f("ix_unmatched_receipts_smsc_id"),
        "unmatched_receipts",
        ["smsc_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_unmatched_receipts_matched_at"),
        "unmatched_receipts",
        ["matched_at"],
        unique=False,
    )
    op.create_table(
        "number_failures",
        sa.Column("msisdn", sa.String(length=20), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.String(length=32), nullable=True),
        sa.Column("last_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("msisdn", name=op.f("pk_number_failures")),
    )


def downgrade() -> None:
    op.drop_table("number_failures")
    op.drop_index(
        op.f("ix_unmatched_receipts_matched_at"), table_name="unmatched_receipts"
    )
    op.drop_index(
        op.f("ix_unmatched_receipts_smsc_id"), table_name="unmatched_receipts"
    )
    op.drop_table("unmatched_receipts")
    op.drop_index("ix_message_parts_smsc_id", table_name="message_parts")
    op.drop_table("message_parts")
    with op.batch_alter_table("messages") as batch:
        for column in reversed(_message_columns()):
            batch.drop_column(column.name)
