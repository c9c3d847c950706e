"""A tenant's callback endpoint: where its receipts and MO go, and the secret they are
signed with (``callback_endpoints``, one row per tenant).

The secret is made here and shown once: when the endpoint is created and when it is
rotated; an update that changes only the URL or the kinds keeps it, so the receiver need
not change anything. The API (``PUT /api/v1/callbacks``) and the CLI (``jingxin callbacks
set``) both call :func:`set_endpoint`.

URLs are checked at the edge: http or https, a host, no user or password in them (the
HMAC signature is the credential), at most 2,000 characters. In production
(``[serve] environment``) only https is accepted, and no loopback, private or link-local
address given literally (nor ``localhost``): an enterprise's URL must not reach into the
operator's own network. Names are not resolved here; the operator's egress rules remain
the real fence.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from jingxin.callbacks.sign import new_secret
from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import CALLBACK_KINDS, CallbackEndpoint, Tenant, utc_now
from jingxin.errors import InputError

URL_MAX = 2000


@dataclass(frozen=True, slots=True)
class EndpointSet:
    """What :func:`set_endpoint` did: the row, whether it is new, and the secret when one
    was made (create or rotate; None otherwise - the old one stands)."""

    endpoint: CallbackEndpoint
    created: bool
    secret: str | None


def check_url(url: str, *, production: bool = False, field: str = "url") -> str:
    """``url`` stripped, if it is one we may POST to; else an InputError naming ``field``."""
    url = url.strip()
    if not url:
        raise InputError(f"{field}: give the URL to POST callbacks to")
    if len(url) > URL_MAX:
        raise InputError(f"{field}: at most {URL_MAX} characters")
    if any(char.isspace() or ord(char) < 32 for char in url):
        raise InputError(f"{field}: no spaces or control characters in the URL")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is no number or out of range
        if host:
            host.encode("idna")  # a name DNS cannot carry (bad label, one too long)
        httpx.URL(url)  # what the pump will POST to
    except (ValueError, httpx.InvalidURL) as exc:  # UnicodeError is a ValueError
        raise InputError(f"{field}: {url!r} is not a URL we can reach ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise InputError(f"{field}: use an http:// or https:// URL (got {parts.scheme or 'none'!r})")
    if not host:
        raise InputError(f"{field}: the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InputError(f"{field}: no user or password in the URL; callbacks are signed "
                         "with the endpoint's secret instead")  # fmt: skip
    if production:
        if parts.scheme != "https":
            raise InputError(f"{field}: production callbacks must use https://")
        if _internal(host):
            raise InputError(f"{field}: {host} is a local or private address; give the "
                             "enterprise's public URL")  # fmt: skip
    return url


def _internal(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (address.is_loopback or address.is_private or address.is_link_local
            or address.is_unspecified or address.is_reserved)  # fmt: skip


def check_kinds(kinds: Iterable[str], *, field: str = "kinds") -> tuple[str, ...]:
    """The kinds asked for, in :data:`CALLBACK_KINDS` order, at least one and none unknown."""
    wanted = {kind.strip() for kind in kinds if kind.strip()}
    unknown = sorted(wanted - set(CALLBACK_KINDS))
    if unknown:
        raise InputError(f"{field}: unknown kind(s) {', '.join(unknown)}; expected "
                         f"{' and/or '.join(CALLBACK_KINDS)}")  # fmt: skip
    if not wanted:
        raise InputError(f"{field}: name at least one of {', '.join(CALLBACK_KINDS)}")
    return tuple(kind for kind in CALLBACK_KINDS if kind in wanted)


def kinds_of(endpoint: CallbackEndpoint) -> tuple[str, ...]:
    return tuple(kind for kind in endpoint.kinds.split(",") if kind)


def set_endpoint(session: Session, *, tenant_id: str, url: str,
                 kinds: Iterable[str] = CALLBACK_KINDS, enabled: bool = True,
                 rotate: bool = False, production: bool = False,
                 now: datetime | None = None) -> EndpointSet:  # fmt: skip
    """Create or update ``tenant_id``'s endpoint (checked first: nothing changes on bad
    input). A new endpoint, or ``rotate``, gets a new secret, returned once."""
    url = check_url(url, production=production)
    checked = check_kinds(kinds)
    now = now or utc_now()
    with store_errors(f"setting the callback endpoint of {tenant_id!r}"):
        if session.get(Tenant, tenant_id) is None:
            raise InputError(f"tenant: no tenant {tenant_id!r}")
        row = session.get(CallbackEndpoint, tenant_id)
        created = row is None
        secret = new_secret() if created or rotate else None
        if row is None:
            row = CallbackEndpoint(tenant_id=tenant_id, created_at=now)
            session.add(row)
        row.url, row.kinds, row.enabled, row.updated_at = url, ",".join(checked), enabled, now
        if secret is not None:
            row.secret = secret
        session.flush()
    return EndpointSet(endpoint=row, created=created, secret=secret)


def get_endpoint(session: Session, *, tenant_id: str) -> CallbackEndpoint | None:
    with store_errors("reading a callback endpoint"):
        return session.get(CallbackEndpoint, tenant_id)


def list_endpoints(session: Session) -> list[CallbackEndpoint]:
    with store_errors("listing callback endpoints"):
        return list(session.scalars(select(CallbackEndpoint).order_by(CallbackEndpoint.tenant_id)))


def delete_endpoint(session: Session, *, tenant_id: str) -> bool:
    """Remove ``tenant_id``'s endpoint; False if it had none. Its deliveries stay in the
    queue (pending ones wait, unsent, until an endpoint is set again)."""
    with store_errors(f"removing the callback endpoint of {tenant_id!r}"):
        row = session.get(CallbackEndpoint, tenant_id)
        if row is None:
            return False
        session.delete(row)
        session.flush()
    return True
