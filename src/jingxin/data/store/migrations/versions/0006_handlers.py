"""MO handlers and their runs: ``mo_outcomes``, one row per handled MO.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here rather than imported from the models: a migration is frozen history.
TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mo_outcomes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("mo_id", BIG_ID, nullable=False),
        sa.Column("handler", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("message_id", BIG_ID, nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("arm", sa.String(length=32), nullable=True),
        sa.Column("reply_message_id", BIG_ID, nullable=True),
        sa.Column("handled_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["mo_id"], ["mo_messages.id"], name=op.f("fk_mo_outcomes_mo_id_mo_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mo_outcomes")),
        sa.UniqueConstraint("mo_id", name=op.f("uq_mo_outcomes_mo_id")),
    )
    op.create_index(op.f("ix_mo_outcomes_outcome"), "mo_outcomes", ["outcome"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_mo_outcomes_outcome"), table_name="mo_outcomes")
    op.drop_table("mo_outcomes")
