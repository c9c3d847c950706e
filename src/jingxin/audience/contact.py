"""Channel preference and complaint sensitivity from ``channel_contacts`` and
``complaints``.

Channel preference: *physical* when the subscriber came to a hall more often than they
used the electronic channels (app, web, SMS business hall) in the last 180 days,
*electronic* when the other way round. The hotline counts as neither. With no contacts
(or a tie) the app flag decides: app users are electronic, the rest physical.

Complaint-sensitive: any complaint about marketing SMS, or at least ``many`` complaints of
any kind, in the year before as_of.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from jingxin.audience.window import AsOf

ELECTRONIC = ("app", "web", "sms_hall")


@dataclass(frozen=True)
class ContactParams:
    channel_days: int = 180
    complaint_days: int = 365
    many_complaints: int = 3


def channel_counts(*, contacts: ir.Table, window: AsOf, params: ContactParams) -> ir.Table:
    """Hall and electronic contacts per subscriber. Hotline (and any other) contacts are
    dropped before the aggregation rather than counted as zero in it: a subscriber left
    with none reads as 0 and 0 either way, and the aggregation, one of the two largest of
    the feature build, gets that many fewer rows."""
    c = contacts.filter((contacts.ts >= window.days_back(params.channel_days))
                        & (contacts.ts < window.end)
                        & contacts.channel.isin(("hall", *ELECTRONIC)))
    hall = (c.channel == "hall").cast("int64").sum()
    return c.group_by("subscriber_id").aggregate(hall_contacts=hall,
                                                 electronic_contacts=c.count() - hall)


def channel_preference(hall: ir.Value, electronic: ir.Value, app_user: ir.Value) -> ir.Value:
    return ibis.cases(
        (hall > electronic, "physical"),
        (electronic > hall, "electronic"),
        (app_user, "electronic"),
        else_="physical",
    )


def complaint_counts(*, complaints: ir.Table, window: AsOf, params: ContactParams) -> ir.Table:
    c = complaints.filter((complaints.ts >= window.days_back(params.complaint_days))
                          & (complaints.ts < window.end))
    return c.group_by("subscriber_id").aggregate(
        complaint_count=c.count(),
        marketing_complaints=(c.category == "marketing_sms").cast("int64").sum(),
    )
