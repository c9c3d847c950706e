"""``jingxin`` commands that record what policy must respect.

- ``jingxin consent add``: a subscriber's consent to one tenant for one category;
- ``jingxin optout add``: an unsubscribe (everyone or one tenant; all marketing or one category);
- ``jingxin blacklist add``: a number nobody (or one tenant) may message;
- ``jingxin subscriber set``: what the network knows about a number.

Every number goes through the one normaliser (:mod:`jingxin.data.validate`) here and again
in the store's functions, so the API and the MO handlers get the same answers.
"""

from __future__ import annotations

from typing import Annotated

import typer

from jingxin.cli.arguments import (AtOption, MsisdnOption, TenantOption, UrlOption, console,
                                   instant, number, with_store)  # fmt: skip

consent_app = typer.Typer(help="Consent evidence.", no_args_is_help=True)
optout_app = typer.Typer(help="Opt-outs (unsubscribes).", no_args_is_help=True)
blacklist_app = typer.Typer(
    help="Numbers nobody (or one tenant) may message.", no_args_is_help=True
)
subscriber_app = typer.Typer(help="What the network knows about a number.", no_args_is_help=True)


@consent_app.command("add")
def consent_add(
    msisdn: MsisdnOption,
    tenant: TenantOption = "operator",
    category: Annotated[str, typer.Option("--category")] = "marketing",
    channel: Annotated[
        str, typer.Option("--channel", help="sms, app, hall, web, api, paper.")
    ] = "sms",
    wording: Annotated[str, typer.Option("--wording", help="What the subscriber agreed to.")] = "",
    at: AtOption = None,
    url: UrlOption = None,
) -> None:
    """Record a subscriber's consent to one tenant for one category."""
    from jingxin.data.store.contact import record_consent
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.data.validate import CONSENT_CATEGORIES, valid_category

    msisdn = number(msisdn)
    category = valid_category(category, field="--category", allowed=CONSENT_CATEGORIES)
    with_store(
        url,
        lambda s: (
            ensure_default_tenant(s),
            record_consent(
                s,
                tenant_id=tenant,
                msisdn=msisdn,
                category=category,
                channel=channel,
                wording=wording,
                given_at=instant(at),
            ),
        ),
    )
    console.print(f"consent recorded: {msisdn} -> {tenant} {category}")


@optout_app.command("add")
def optout_add(
    msisdn: MsisdnOption,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (default: all).")
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Default: all marketing.")
    ] = None,
    source: Annotated[str, typer.Option("--source")] = "console",
    at: AtOption = None,
    url: UrlOption = None,
) -> None:
    """Record an unsubscribe (from everyone, or one tenant; all marketing, or one category)."""
    from jingxin.data.store.contact import record_opt_out
    from jingxin.data.validate import OPT_OUT_CATEGORIES, OPT_OUT_SOURCES, valid_choice

    msisdn = number(msisdn)
    if category is not None:
        valid_choice(category, allowed=OPT_OUT_CATEGORIES, field="--category")
    valid_choice(source, allowed=OPT_OUT_SOURCES, field="--source")
    with_store(
        url,
        lambda s: record_opt_out(
            s, msisdn=msisdn, source=source, tenant_id=tenant, category=category, at=instant(at)
        ),
    )
    console.print(
        f"opt-out recorded: {msisdn} from {tenant or 'everyone'} {category or 'marketing'}"
    )


@blacklist_app.command("add")
def blacklist_add(
    msisdn: MsisdnOption,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (default: all).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
    by: Annotated[str, typer.Option("--by", help="Who adds it.")] = "console",
    at: Annotated[
        str | None, typer.Option("--at", help="In force from this ISO instant (default: now).")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Blacklist a number for everyone (or one tenant), whatever the category."""
    from jingxin.data.store.contact import add_to_blacklist

    msisdn = number(msisdn)
    with_store(
        url,
        lambda s: add_to_blacklist(
            s, msisdn=msisdn, added_by=by, reason=reason, tenant_id=tenant, at=instant(at)
        ),
    )
    console.print(f"blacklisted: {msisdn} for {tenant or 'everyone'}")


@subscriber_app.command("set")
def subscriber_set(
    msisdn: MsisdnOption,
    in_service: Annotated[bool | None, typer.Option("--in-service/--out-of-service")] = None,
    complaint_sensitive: Annotated[
        bool | None, typer.Option("--complaint-sensitive/--not-complaint-sensitive")
    ] = None,
    complained_at: Annotated[
        str | None, typer.Option("--complained-at", help="ISO instant of the last complaint.")
    ] = None,
    roaming: Annotated[
        str | None, typer.Option("--roaming", help="ISO country visited; '-' clears.")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA zone of the subscriber.")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Set what the network knows about a number (service, complaints, roaming, zone)."""
    from jingxin.data.store.contact import update_subscriber_state
    from jingxin.data.validate import valid_country, valid_timezone

    msisdn = number(msisdn)
    changes: dict = {}
    if in_service is not None:
        changes["in_service"] = in_service
    if complaint_sensitive is not None:
        changes["complaint_sensitive"] = complaint_sensitive
    if complained_at is not None:
        changes["last_complaint_at"] = instant(complained_at, "--complained-at")
    if roaming is not None:
        changes["roaming_country"] = (None if roaming == "-"
                                      else valid_country(roaming, field="--roaming"))
    if timezone is not None:
        changes["timezone"] = valid_timezone(timezone, field="--timezone")
    with_store(url, lambda s: update_subscriber_state(s, msisdn=msisdn, **changes))
    console.print(f"subscriber state updated: {msisdn} {sorted(changes)}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(consent_app, name="consent")
    app.add_typer(optout_app, name="optout")
    app.add_typer(blacklist_app, name="blacklist")
    app.add_typer(subscriber_app, name="subscriber")
