"""One road: only the dispatch package writes the outbox and the contact ledger."""

from __future__ import annotations

import re
from pathlib import Path

import jingxin

SRC = Path(jingxin.__file__).parent
WRITERS = re.compile(r"\b(enqueue|enqueue_table|insert_table|record_contacts|"
                     r"record_contact_table)\b\s*[(,]|import .*\b(enqueue|record_contact)"
                     # or an insert of the tables themselves (the hall, journeys, probes...)
                     r"|\binsert\(\s*(Message|LedgerEntry)\b|\b(Message|LedgerEntry)\(\s*\w+=")  # fmt: skip
# The store module that holds the ledger's insert, and the benchmarks, which fill a store
# directly to measure the worker (the product's senders never do).
ALLOWED = ("dispatch/", "data/store/ledger.py", "bench/")


def test_no_module_outside_dispatch_writes_the_outbox_or_the_ledger() -> None:
    # Given every source module, When we look for calls of the outbox and ledger inserts
    offenders = [
        str(path.relative_to(SRC)) for path in SRC.rglob("*.py")
        if not str(path.relative_to(SRC)).startswith(ALLOWED)
        and WRITERS.search(path.read_text("utf-8"))
    ]  # fmt: skip
    # Then only the dispatch package (and the ledger's own module) has them
    assert offenders == []
