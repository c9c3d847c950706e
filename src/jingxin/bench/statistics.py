"""The planner's statistics in a way-back benchmark, as a store in service has them.

``mo-inbox`` and ``hall`` start on an empty store whose tables then grow by tens of
thousands of rows in seconds. PostgreSQL plans a prepared statement generically after
five runs, against the statistics of that moment: a table that held nothing is then read
whole (a sequential scan, or a hash of it) on every later run, however large it grows,
until the table is analysed again. The policy read of a hall batch scanned ``messages``
and ``contact_ledger`` so; its earlier answers, ``hall_interactions``. In service the
tables are large and analysed (autovacuum's analyse, after 50 rows plus a tenth of a
table changed, makes the cached plans again), and those reads are index probes.

On a server with autovacuum on, nothing is done here: it analyses the tables itself a
minute or so into the run. This project's CI server has it off; there :func:`analysed_once`
analyses the store once, when a given number of MO are stored - a few seconds into the
run, inside the 2 s the steady-state figures leave out - and the report says so. In
process, a hall batch of 20 MO took 16.5-17.8 ms without and 11.4-13.3 ms with one
``ANALYZE`` after its first 400 MO (BENCHMARKS.md, "The way back, a sixth time").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def analysed_once(store_url: str, *, mo: int, every: float = 0.1) -> Iterator[dict[str, Any]]:
    """While the block runs: once ``mo_messages`` holds ``mo`` rows, ``ANALYZE`` the
    database - unless the server's autovacuum is on. Yields the report's ``statistics``:
    the server's ``autovacuum`` and, when this analysed, ``analysed_at_mo`` and
    ``analyse_ms`` (filled in as it happens)."""
    import psycopg

    from jingxin.bench.harness import libpq_url

    plain = libpq_url(store_url)
    with psycopg.connect(plain, autocommit=True) as conn:
        autovacuum = conn.execute("SHOW autovacuum").fetchone()[0]
    report: dict[str, Any] = {"autovacuum": autovacuum}
    if autovacuum == "on":
        yield report
        return
    stop = threading.Event()

    def watch() -> None:
        try:
            with psycopg.connect(plain, autocommit=True) as conn:
                while not stop.wait(every):
                    # count(*) of a table this size is cheaper than the run's own reads;
                    # pg_class.reltuples is not kept while nothing analyses.
                    stored = conn.execute("SELECT count(*) FROM mo_messages").fetchone()[0]
                    if stored >= mo:
                        started = time.perf_counter()
                        conn.execute("ANALYZE")
                        report["analysed_at_mo"] = stored
                        report["analyse_ms"] = round((time.perf_counter() - started) * 1000, 1)
                        return
        except psycopg.Error:
            return  # the database went away (the run ended early): nothing to analyse

    thread = threading.Thread(target=watch, name="bench-analyse", daemon=True)
    thread.start()
    try:
        yield report
    finally:
        stop.set()
        thread.join(timeout=30)
