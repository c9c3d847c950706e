"""Callbacks: receipts and MO pushed to an enterprise's URL, signed, retried, never lost.

- :mod:`.endpoints`: a tenant's URL, the kinds it takes (``receipt``, ``mo``) and its
  signing secret (shown once);
- :mod:`.collect`: new receipts and attributed MO of those tenants into the queue, one
  delivery per event (keyed, so collecting twice enqueues once);
- :mod:`.queue`: the durable queue (``callback_deliveries``): claim with a lease, record
  delivered / retry after a back-off / dead, re-queue;
- :mod:`.push`: the pump - signed POSTs, a lane per tenant, a few lanes at once;
- :mod:`.sign`: ``X-Jingxin-Signature: t=<unix>,v1=<HMAC-SHA256(secret, "<t>.<body>")>``.

Crash-safety contract: an event is committed to the queue before anything is sent; a
delivery is marked delivered only after its endpoint answered 2xx, and never sent again
after that; between the POST and that commit a crash means one more POST of the same
delivery (same ``X-Jingxin-Delivery`` id) once its lease ends. At least once, never lost.

``jingxin callbacks`` (set, list, run, retry) and ``/api/v1/callbacks`` call these same
functions; ``jingxin scheduler`` runs the pump as one of its duties.
"""

from jingxin.callbacks.collect import collect
from jingxin.callbacks.endpoints import (
    EndpointSet,
    check_kinds,
    check_url,
    delete_endpoint,
    get_endpoint,
    kinds_of,
    list_endpoints,
    set_endpoint,
)
from jingxin.callbacks.push import (
    CallbackDuties,
    HttpPoster,
    Poster,
    Pump,
    PushReport,
    send_test,
)
from jingxin.callbacks.queue import Attempt, Backoff, Due, list_deliveries, requeue
from jingxin.callbacks.sign import signature, verify

__all__ = [
    "Attempt", "Backoff", "CallbackDuties", "Due", "EndpointSet", "HttpPoster", "Poster",
    "Pump", "PushReport", "check_kinds", "check_url", "collect", "delete_endpoint",
    "get_endpoint", "kinds_of", "list_deliveries", "list_endpoints", "requeue",
    "send_test", "set_endpoint", "signature", "verify",
]  # fmt: skip
