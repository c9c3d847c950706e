"""Two processes meeting a new PostgreSQL store at once both create the operator's tenant
(a worker's two handler processes did, on their first batch): the one that loses the
insert reads the winner's row instead of failing."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from jingxin.data.store.models import DEFAULT_TENANT_ID, Tenant
from jingxin.data.store.tenants import ensure_default_tenant

pytestmark = pytest.mark.parametrize("store_url", ["postgres"], indirect=True)


def test_the_loser_of_the_default_tenant_race_reads_the_winners_row(store) -> None:
    # Given one session that has created the tenant but not committed yet
    first = store.sessions()
    ensure_default_tenant(first)
    got: dict[str, object] = {}

    def second() -> None:
        with store.sessions() as session, session.begin():
            # it finds no tenant, and its insert waits for the first one's on the key
            got["tenant"] = ensure_default_tenant(session).id

    racer = threading.Thread(target=second)
    racer.start()
    time.sleep(0.5)
    assert racer.is_alive()  # waiting for the first transaction
    # When the first commits
    first.commit()
    first.close()
    racer.join(timeout=10)
    # Then the second read the winner's row, and there is one tenant
    assert got == {"tenant": DEFAULT_TENANT_ID}
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Tenant)) == 1
