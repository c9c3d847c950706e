"""Send-time re-check and number hygiene - owned by the no-means-no work.

The send-time re-check (``dispatch/recheck.py``) needs no schema change: its ``cancel``
outcome in ``decisions.outcome`` (String(8), no CHECK constraint in the database) is
validated in Python (``models.audit.OUTCOMES``), and its one query per claim is served by
the existing indexes ``ix_opt_outs_msisdn``, the blacklist's unique ``(msisdn,
tenant_id)`` and ``ix_consents_tenant_id_msisdn``. The slot stays in the chain.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
