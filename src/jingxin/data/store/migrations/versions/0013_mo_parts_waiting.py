"""The MO parts' indexes (models/inbox.py): the index by message keeps linked parts only,
and a new one finds the parts still waiting for their siblings, by sender and age.

Reassembly asks for a flush's senders' unlinked parts (``mo_id IS NULL``); PostgreSQL
answered that from the message index, which held an entry for every long MO's part ever
written (each starts unlinked, and the entries stay until a vacuum): 27 ms a flush after
27,000 parts, growing. Written by hand (autogenerate does not see a changed predicate).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 20:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINKED = sa.text("mo_id IS NOT NULL")
WAITING = sa.text("mo_id IS NULL")


def upgrade() -> None:
    op.drop_index("ix_mo_parts_mo_id", table_name="mo_parts")
    op.create_index("ix_mo_parts_mo_id", "mo_parts", ["mo_id"], unique=False,
                    sqlite_where=LINKED, postgresql_where=LINKED)  # fmt: skip
    op.create_index("ix_mo_parts_waiting", "mo_parts", ["source", "received_at"], unique=False,
                    sqlite_where=WAITING, postgresql_where=WAITING)  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_mo_parts_waiting", table_name="mo_parts")
    op.drop_index("ix_mo_parts_mo_id", table_name="mo_parts")
    op.create_index("ix_mo_parts_mo_id", "mo_parts", ["mo_id"], unique=False)
