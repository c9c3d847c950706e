"""Dispatch: the durable outbox, workers with priority lanes, routing, receipts, retries.

* :mod:`.outbox` - bulk, idempotent enqueue; the message state machine.
* :mod:`.claim` - claiming due messages lane by lane (``FOR UPDATE SKIP LOCKED``).
* :mod:`.worker` - the asyncio worker: claim → route → rate-limit → submit; receipts back.
* :mod:`.routing` - rules by range / carrier, channel health, fail-over.
* :mod:`.receipts` - receipts matched to message *and* part; unknown ids kept aside.
* :mod:`.retry` - temporary, permanent and unresolved failures and what follows them.
* :mod:`.invalid` - numbers that keep failing permanently are marked invalid.
* :mod:`.ratelimit` - token buckets, in-process and in Redis.
* :mod:`.metrics` - Prometheus metrics.
* :mod:`.campaign` / :mod:`.admission` - audience file → render → policy → outbox.
* :mod:`.bootstrap` - builds a worker from the settings.
"""
