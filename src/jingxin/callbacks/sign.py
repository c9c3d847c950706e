"""Signing a callback so the enterprise can tell it came from us, and when.

Every POST carries ``X-Jingxin-Signature: t=<unix seconds>,v1=<hex>``, where the hex is
HMAC-SHA256 keyed with the endpoint's secret over ``f"{t}.{body}"`` (the raw body bytes,
exactly as sent). The receiver recomputes it over the body it read and compares in
constant time; checking that ``t`` is recent (:data:`TOLERANCE_SECONDS`) stops a captured
request from being replayed later. :func:`verify` is the receiver's side, for tests and
for enterprises writing theirs in Python.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "X-Jingxin-Signature"
DELIVERY_HEADER = "X-Jingxin-Delivery"
EVENT_HEADER = "X-Jingxin-Event"
SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, URL-safe (shown once, stored as is)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` with ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``X-Jingxin-Signature`` value for ``body`` (``timestamp``: now by default)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={digest(secret, body, t)}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None,
           tolerance: float = TOLERANCE_SECONDS) -> bool:  # fmt: skip
    """Is ``header`` a valid signature of ``body`` with ``secret``, made within
    ``tolerance`` seconds of ``now``? Any malformed header is simply not valid."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        t = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = digest(secret, body, t)
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))
