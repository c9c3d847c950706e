"""The delivery entry (one road for every sender): where a message came from, the number
it goes out from and its experiment arm; campaigns get the fingerprint of their spec (so a
spec that already ran is refused) and end as ``finished`` instead of ``done``.

Existing messages with a campaign id are marked ``source = 'campaign'`` (their source id
is the campaign id); the others ``'api'``, the only other sender before this revision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=False,
                                   server_default="api"))  # fmt: skip
        batch.add_column(sa.Column("source_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("sender", sa.String(21), nullable=True))
        batch.add_column(sa.Column("arm", sa.String(32), nullable=True))
    op.execute("UPDATE messages SET source = 'campaign', "
               "source_id = CAST(campaign_id AS VARCHAR(64)) WHERE campaign_id IS NOT NULL")  # fmt: skip
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
        batch.create_index("ix_campaigns_fingerprint", ["fingerprint"])
    op.execute("UPDATE campaigns SET status = 'finished' WHERE status = 'done'")


def downgrade() -> None:
    op.execute("UPDATE campaigns SET status = 'done' WHERE status = 'finished'")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_index("ix_campaigns_fingerprint")
        batch.drop_column("fingerprint")
    with op.batch_alter_table("messages") as batch:
        for name in ("arm", "sender", "source_id", "source"):
            batch.drop_column(name)
