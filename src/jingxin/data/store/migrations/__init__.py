"""Alembic migrations of the operational store (see jingxin.data.store.migrate)."""
