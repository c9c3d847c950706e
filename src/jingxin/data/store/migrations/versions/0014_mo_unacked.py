"""The parts without an SMSC id not yet known to be acknowledged (``mo_unacked``).

An SMPP MO carries no id the SMSC keeps when it delivers the PDU again, so the inbox told
a redelivery by its fingerprint within ``[inbox] duplicate_window_seconds`` - and took a
subscriber's identical second text (``YE`` twice, a second ``Y``) for one. A PDU is only
delivered again while unacknowledged: the inbox now keeps the stored parts whose
deliver_sm_resp is not yet recorded as written, and only a PDU the same as one of them is
a redelivery. The fingerprint index of mo_parts, which nothing reads, goes.

Parts received in the hour before the upgrade are entered as unacknowledged: this build
cannot tell which of them the old one acknowledged, and taking one that was not for
acknowledged would store its redelivery twice.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here rather than imported from the models: a migration is frozen history.
TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mo_unacked",
        sa.Column("fingerprint", sa.String(length=40), nullable=False),
        sa.Column("part_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", "part_id", name=op.f("pk_mo_unacked")),
    )
    parts = sa.table("mo_parts", sa.column("id"), sa.column("fingerprint"), sa.column("smsc_id"),
                     sa.column("received_at", TIMESTAMP))  # fmt: skip
    unacked = sa.table("mo_unacked", sa.column("fingerprint"), sa.column("part_id"),
                       sa.column("received_at", TIMESTAMP))  # fmt: skip
    since = datetime.now(UTC) - timedelta(hours=1)
    if op.get_bind().dialect.name == "sqlite":
        since = since.replace(tzinfo=None)  # SQLite keeps the UTC wall time as text
    op.execute(unacked.insert().from_select(
        ["fingerprint", "part_id", "received_at"],
        sa.select(parts.c.fingerprint, parts.c.id, parts.c.received_at).where(
            parts.c.smsc_id.is_(None), parts.c.received_at >= since),
    ))  # fmt: skip
    op.drop_index("ix_mo_parts_fingerprint", table_name="mo_parts")


def downgrade() -> None:
    op.create_index("ix_mo_parts_fingerprint", "mo_parts", ["fingerprint"], unique=False)
    op.drop_table("mo_unacked")
