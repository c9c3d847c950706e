"""THE delivery entry: the one road every sender takes to the outbox.

Campaigns, journeys, geofences, the hall, the API, probes and inbox replies all ask here:
a :class:`Delivery` (a few of them at once, :func:`deliver_many`; a table of them,
:func:`deliver_table`) names the number, the
source, the idempotency key, the category and either an approved catalogue template with
its variables or an already-approved text, and optionally a ``link`` (a target URL: the
text carries its short link, :mod:`jingxin.analytics.links`). Here it is normalised,
checked (an unknown source, tenant or category, no template and no text, both, an
unapproved template, a template sent under a laxer category than it was approved for, an
invalid number, a link the text has no place for: an :class:`~jingxin.errors.InputError`
naming the field, nothing written), rendered, decided by policy, and written. No other
module writes ``messages`` or ``contact_ledger``.

Short links
-----------
With a ``link``, the template variable ``link`` (or the literal ``{link}`` of a ``text``)
is ``https://<analytics.link_domain>/<token>``, the token an HMAC of the idempotency key;
the message row keeps the token and the target (``link_token``, ``link_url``), which the
redirect (``jingxin serve``) reads. The URL has a fixed length, so the parts count does not
depend on the token. Two keys whose tokens collide are refused by the unique index on
``link_token``; the write is then tried again with the keys' next tokens
(:func:`with_fresh_tokens`), so a collision costs a retry, never a message.

Crash-safety contract
---------------------
:func:`deliver_one` writes the outbox row, its contact-ledger row and its decision row in
ONE transaction: after a crash either all three are there or none is, and a retry with the
same idempotency key either does the work or answers ``duplicate`` with the first
message's id (the key is unique in ``messages``; a concurrent twin loses the insert and
answers ``duplicate`` too). A rejection writes only its decision row. On PostgreSQL the
three rows are one statement (data-modifying ``WITH``), atomic by itself.
:func:`deliver_many` writes every row of its batch in one transaction, as if each
delivery had been a :func:`deliver_one` call in order.

:func:`deliver_table` (the campaign's bulk form, :mod:`jingxin.dispatch.delivery_table`)
works a chunk at a time: the chunk's ledger rows commit first (so a later chunk's caps and
duplicate check see them), then its outbox rows, then the decision rows of what it
deferred or rejected (an admitted row's record is its outbox row), each in its own
transaction. A crash leaves at most one chunk counted in the ledger but not queued (the
side of the caps that protects subscribers) or queued without its decision rows; nothing
is ever queued twice, since every row's key is ``<source>:<source id>:<msisdn>``.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
from sqlalchemy import select

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import DEFAULT_TENANT_ID, Message, utc_now
from jingxin.data.store.models.content import CATEGORIES
from jingxin.data.store.models.messages import SOURCES
from jingxin.dispatch.approval import ApprovedTemplate, TemplateCache, check_category
from jingxin.errors import ConfigError, InputError, StoreError, TemplateError

if TYPE_CHECKING:
    from collections.abc import Callable

    from jingxin.config import AnalyticsSettings, ContentSettings
    from jingxin.dispatch.delivery_table import DeliverySummary
    from jingxin.policy.config import PolicyConfig

__all__ = ["Delivered", "Delivery", "DeliveryContext", "DeliverySummary", "deliver_many",
           "deliver_one", "deliver_table"]  # fmt: skip

CONFIG_TTL_SECONDS = 10.0
OUTCOMES = ("queued", "deferred", "rejected", "duplicate")
T = TypeVar("T")
LINK_ATTEMPTS = 4  # writes tried with fresh tokens before a collision is an error
LINK_VARIABLE = "link"  # the template variable that carries the short link
LINK_MARK = "{link}"  # where a text carries it


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message a sender asks for (contract 1 of the delivery entry)."""

    msisdn: str  # any form; normalised here (refused if invalid)
    source: str  # 'campaign'|'journey'|'fence'|'hall'|'api'|'probe'|'inbox'
    idempotency_key: str
    category: str = "notification"  # 'otp'|'notification'|'marketing'
    tenant_id: str = DEFAULT_TENANT_ID
    source_id: str | None = None
    template: str | None = None  # code of an APPROVED catalogue template, or
    variables: Mapping[str, Any] = field(default_factory=dict)
    text: str | None = None  # an already-approved reply text (exactly one of template/text)
    wanted_at: datetime | None = None
    validity: timedelta | None = None
    sender: str | None = None  # service number it goes out from (None: channel default)
    arm: str | None = None  # experiment arm, decided before policy
    link: str | None = None  # a target URL: the text carries its short link ({{ link }})


@dataclass(frozen=True, slots=True)
class Delivered:
    """What became of a :class:`Delivery`."""

    outcome: str  # 'queued' | 'deferred' | 'rejected' | 'duplicate'
    message_id: int | None
    send_at: datetime | None
    reasons: tuple[str, ...] = ()


class DeliveryContext:
    """What every delivery of a process shares: the ``[policy]`` defaults, the content
    settings, the short links' domain and secret (``[analytics]``), and caches of the
    tenants' rules and signatures and of approved templates (each kept a few seconds, so a
    change in the store is seen soon)."""

    def __init__(self, *, policy_defaults: Mapping[str, Any] | None = None,
                 content: ContentSettings | None = None,
                 analytics: AnalyticsSettings | None = None) -> None:  # fmt: skip
        from jingxin.config import AnalyticsSettings, ContentSettings

        self.policy_defaults = dict(policy_defaults or {})
        self.content = content or ContentSettings()
        self.analytics = analytics or AnalyticsSettings()
        self.templates = TemplateCache()
        self._tenants: tuple[float, PolicyConfig, dict[str, str | None]] | None = None
        self._links: tuple[str, str] | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> DeliveryContext:
        policy = settings.policy
        defaults = {"quiet_start": policy.quiet_start, "quiet_end": policy.quiet_end,
                    "default_timezone": policy.default_timezone}  # fmt: skip
        return cls(policy_defaults=defaults, content=settings.content,
                   analytics=getattr(settings, "analytics", None))  # fmt: skip

    def links(self) -> tuple[str, str]:
        """(domain, secret) of the short links. A domain content review does not allow is
        a ConfigError naming both settings: every message with a link would carry a link
        no reviewer passed. Asked only when a delivery has a link, so a misconfigured
        domain does not stop messages without one."""
        if self._links is None:
            from jingxin.content.review import host_allowed

            domain = self.analytics.link_domain.strip().lower().rstrip(".")
            if not domain or not host_allowed(domain, self.content.allowed_domains):
                allowed = ", ".join(self.content.allowed_domains) or "none"
                raise ConfigError(
                    f"analytics.link_domain {self.analytics.link_domain!r} is not in "
                    f"content.allowed_domains ({allowed}): short links would not pass content "
                    "review; add the domain to content.allowed_domains or change link_domain")
            self._links = (domain, self.analytics.link_secret)
        return self._links

    def tenant(self, store: Store, tenant_id: str) -> tuple[PolicyConfig, str | None]:
        """(every tenant's policy rules, this tenant's signature); an unknown tenant is an
        InputError. The operator's own tenant is created on first use."""
        kept = self._tenants
        if kept is None or time.monotonic() - kept[0] > CONFIG_TTL_SECONDS or (
            tenant_id not in kept[2]
        ):
            kept = self._tenants = self._load_tenants(store, tenant_id)
        if tenant_id not in kept[2]:
            raise InputError(f"tenant: unknown tenant {tenant_id!r} (create it first)")
        return kept[1], kept[2][tenant_id]

    def _load_tenants(self, store: Store, tenant_id: str):
        from jingxin.data.store.models import Tenant
        from jingxin.data.store.policy_state import load_config
        from jingxin.data.store.tenants import ensure_default_tenant

        with store_errors("reading the tenants"), store.transaction() as session:
            if tenant_id == DEFAULT_TENANT_ID:
                ensure_default_tenant(session)
            signatures = {t.id: t.signature for t in session.scalars(select(Tenant))}
            config = load_config(session, defaults=self.policy_defaults)
        return time.monotonic(), config, signatures

    def approved(self, store: Store, *, tenant_id: str, code: str) -> ApprovedTemplate:
        return self.templates.get(store, tenant_id=tenant_id, code=code)


def check_fields(*, source: str, category: str, where: str = "delivery") -> None:
    """An unknown source or category is an InputError naming the field."""
    if source not in SOURCES:
        raise InputError(f"{where}: source: unknown source {source!r} (use {', '.join(SOURCES)})")
    if category not in CATEGORIES:
        raise InputError(f"{where}: category: unknown category {category!r} "
                         f"(use {', '.join(CATEGORIES)})")  # fmt: skip


def normalised(msisdn: str, *, where: str = "delivery") -> str:
    """The number in E.164. The common shapes (``+86`` and 11 digits, or 11 bare digits)
    of a CN mobile are read as :func:`jingxin.data.msisdn.normalise_msisdns` reads them,
    by phonenumbers' own CN mobile pattern; anything else is parsed by phonenumbers."""
    from jingxin.data.msisdn import normalise_msisdn

    text = msisdn.strip() if isinstance(msisdn, str) else ""
    shape = _CN_SHAPE.fullmatch(text)
    if shape is not None and _cn_mobile().fullmatch(shape[1]) is not None:
        return "+86" + shape[1]
    try:
        return normalise_msisdn(msisdn).e164
    except InputError as exc:
        raise InputError(f"{where}: msisdn: {exc}") from exc


_CN_SHAPE = re.compile(r"(?:\+86)?(1[0-9]{10})")


@functools.cache
def _cn_mobile() -> re.Pattern[str]:
    from jingxin.data.msisdn import cn_mobile_pattern

    return re.compile(cn_mobile_pattern())


def campaign_id_of(source: str, source_id: str | None) -> int | None:
    """The campaign id a campaign delivery's source id names (policy's per-campaign caps)."""
    if source != "campaign" or source_id is None:
        return None
    try:
        return int(source_id)
    except ValueError as exc:
        raise InputError(f"source_id: a campaign's source id is its number, "
                         f"not {source_id!r}") from exc  # fmt: skip


def _text_of(store: Store, delivery: Delivery, context: DeliveryContext,
             signature: str | None, short: str | None, where: str) -> tuple[str, int]:  # fmt: skip
    """(the final text, its parts): the approved template rendered, or the given text
    composed (signature, and for marketing the unsubscribe route); too long is refused.
    ``short`` is the short link the text must carry (the template's ``link``, the text's
    ``{link}``): a text without a place for it is refused, the link would be lost."""
    from jingxin.content.encoding import count_parts
    from jingxin.content.templates import compose, render

    content = context.content
    if (delivery.template is None) == (delivery.text is None):
        raise InputError(f"{where}: give exactly one of template and text")
    if delivery.template is not None:
        what = f"template {delivery.template}"
        approved = context.approved(store, tenant_id=delivery.tenant_id, code=delivery.template)
        check_category(approved=approved.category, sending=delivery.category, what=what)
        variables = _with_link(delivery.variables, approved, short, where=where, what=what)
        rendered = render(approved.compiled, variables, category=delivery.category,
                          signature=signature, unsubscribe_text=content.unsubscribe_text,
                          max_parts=content.max_parts, where=what)  # fmt: skip
        if not rendered.fits:
            raise TemplateError(rendered.error)
        if short is not None and short not in rendered.text:
            raise InputError(f"{where}: link: {what} does not show {{{{ {LINK_VARIABLE} }}}} "
                             "as it is (a filter or a condition): the link would be lost")  # fmt: skip
        return rendered.text, rendered.parts.parts
    if not delivery.text.strip():
        raise InputError(f"{where}: text is empty")
    body = _text_with_link(delivery.text, short, where=where)
    text = compose(body, category=delivery.category, signature=signature,
                   unsubscribe_text=content.unsubscribe_text, where=where)  # fmt: skip
    parts = count_parts(text)
    if parts.parts > content.max_parts:
        raise TemplateError(f"{where}: text: the message needs {parts.parts} parts; "
                            f"at most {content.max_parts} are allowed")  # fmt: skip
    return text, parts.parts


def _with_link(variables: Mapping[str, Any], approved: ApprovedTemplate, short: str | None,
               *, where: str, what: str) -> Mapping[str, Any]:  # fmt: skip
    """The template's variables, its ``link`` the short link (if the delivery has one)."""
    if short is None:
        return variables
    if LINK_VARIABLE not in approved.compiled.variables:
        raise InputError(f"{where}: link: {what} does not use {{{{ {LINK_VARIABLE} }}}}: "
                         "the link would be lost (give a template that shows it)")  # fmt: skip
    if LINK_VARIABLE in variables:
        raise InputError(f"{where}: link: given both as the delivery's link and as the "
                         f"variable {LINK_VARIABLE!r} (give the target as the link only)")  # fmt: skip
    return {**variables, LINK_VARIABLE: short}


def _text_with_link(text: str, short: str | None, *, where: str) -> str:
    """The text with its ``{link}`` replaced by the short link."""
    if short is None:
        if LINK_MARK in text:
            raise InputError(f"{where}: text: it has {LINK_MARK} but the delivery has no link")
        return text
    if LINK_MARK not in text:
        raise InputError(f"{where}: link: the text has no {LINK_MARK} to carry it: "
                         "the link would be lost")  # fmt: skip
    return text.replace(LINK_MARK, short)


def with_fresh_tokens(write: Callable[[int], T], *, linked: bool) -> T:
    """``write(attempt)``, tried again with the next ``attempt`` (each link's next token,
    :func:`jingxin.analytics.links.token_for`) while the store refuses a token another
    key's message holds: the unique index on ``messages.link_token``. The write's
    transaction was rolled back, so nothing of the refused attempt is kept."""
    for attempt in range(LINK_ATTEMPTS):
        try:
            return write(attempt)
        except StoreError as exc:
            if not linked or attempt + 1 == LINK_ATTEMPTS or not token_taken(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def token_taken(exc: BaseException) -> bool:
    """True if ``exc`` is the store refusing a short-link token already taken."""
    from sqlalchemy.exc import IntegrityError

    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    return isinstance(cause, IntegrityError) and "link_token" in str(cause.orig)


def deliver_one(store: Store, *, delivery: Delivery, context: DeliveryContext | None = None,
                now: datetime | None = None) -> Delivered:  # fmt: skip
    """Decide, render and enqueue one message in one transaction, once per idempotency key
    (see the module's crash-safety contract). A policy rejection is an outcome, not an
    exception; bad input raises InputError naming the field and writes nothing."""
    from jingxin.dispatch.admission import admit_one

    context, now = context or DeliveryContext(), now or utc_now()

    def write(attempt: int) -> Delivered:
        ready, config = _ready(store, delivery, context, attempt=attempt)
        return admit_one(store, ready=ready, config=config, now=now)

    return with_fresh_tokens(write, linked=delivery.link is not None)


def deliver_many(store: Store, *, deliveries: Sequence[Delivery],
                 context: DeliveryContext | None = None,
                 now: datetime | None = None) -> list[Delivered]:  # fmt: skip
    """What :func:`deliver_one` called on each delivery in order gives, for a small batch
    (tens to a few hundred, e.g. a batch of inbox replies) in ONE transaction: one state
    load for every number, policy's single form per delivery on the state the earlier
    ones left (so a later one meets the caps the earlier ones filled, and a repeated key
    is a ``duplicate`` of the first), one multi-row insert per table. Every delivery is
    checked and rendered first: bad input raises InputError naming the delivery and
    writes nothing. (Competing candidates are taken first come, first served, as one
    call after another would; ``deliver_table`` ranks them instead - a campaign's own.)"""
    from jingxin.dispatch.admission import admit_many

    context, now = context or DeliveryContext(), now or utc_now()

    def write(attempt: int) -> list[Delivered]:
        made = [_ready(store, d, context, where=f"delivery #{i + 1} ({d.idempotency_key})",
                       attempt=attempt) for i, d in enumerate(deliveries)]  # fmt: skip
        if not made:
            return []
        return admit_many(store, ready=[r for r, _ in made], config=made[-1][1], now=now)

    return with_fresh_tokens(write, linked=any(d.link is not None for d in deliveries))


def _ready(store: Store, delivery: Delivery, context: DeliveryContext, *,
           where: str = "delivery", attempt: int = 0) -> tuple[Any, PolicyConfig]:  # fmt: skip
    """The delivery checked, its number normalised, its short link made (the ``attempt``-th
    token of its key) and its text rendered (an InputError naming the field otherwise),
    and every tenant's policy rules."""
    from jingxin.dispatch.admission import Ready

    if not delivery.idempotency_key:
        raise InputError(f"{where}: idempotency_key is required")
    check_fields(source=delivery.source, category=delivery.category, where=where)
    msisdn = normalised(delivery.msisdn, where=where)
    config, signature = context.tenant(store, delivery.tenant_id)
    # The single form's errors name the key; a batch's name the delivery and its key.
    named = f"delivery {delivery.idempotency_key}" if where == "delivery" else where
    token = target = short = None
    if delivery.link is not None:
        from jingxin.analytics.links import check_target, short_url, token_for

        target = check_target(delivery.link, where=f"{named}: link")
        domain, secret = context.links()
        token = token_for(delivery.idempotency_key, secret, attempt=attempt)
        short = short_url(domain, token)
    text, parts = _text_of(store, delivery, context, signature, short, named)
    return Ready(delivery, msisdn, text, parts, token, target), config


def deliver_table(store: Store, *, table: pa.Table, context: DeliveryContext | None = None,
                  now: datetime | None = None, **options: Any) -> DeliverySummary:  # fmt: skip
    """Deliver a table of candidates (a campaign's audience): see
    :func:`jingxin.dispatch.delivery_table.deliver_table` for its columns and options."""
    from jingxin.dispatch.delivery_table import deliver_table as bulk

    return bulk(store, table=table, context=context or DeliveryContext(),
                now=now or utc_now(), **options)  # fmt: skip


def existing_message(session: Any, key: str) -> int | None:
    """The id of the message already queued under ``key``, if any."""
    return session.scalar(select(Message.id).where(Message.idempotency_key == key))


def __getattr__(name: str) -> Any:
    if name == "DeliverySummary":  # the bulk form's module imports this one
        from jingxin.dispatch.delivery_table import DeliverySummary

        return DeliverySummary
    raise AttributeError(name)
