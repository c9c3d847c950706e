"""Claim order: the queue index ends with the id, so "oldest due first, then oldest queued"
is one index range scan on every store.

Ordering a lane by ``(scheduled_at, id)`` over the old ``(state, lane, scheduled_at)``
index made PostgreSQL read and sort every queued row of the lane with the same due time
on each claim (a whole campaign is queued with one due time), so claims ordered by
``scheduled_at`` alone - and a message resent after a worker crash went behind the rest of
its campaign, often past its validity. With ``id`` in the index both are solved.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ("state", "lane", "scheduled_at")
NEW = ("state", "lane", "scheduled_at", "id")


def upgrade() -> None:
    op.drop_index("ix_messages_state_lane_scheduled_at", table_name="messages")
    op.create_index("ix_messages_queue", "messages", list(NEW))


def downgrade() -> None:
    op.drop_index("ix_messages_queue", table_name="messages")
    op.create_index("ix_messages_state_lane_scheduled_at", "messages", list(OLD))
