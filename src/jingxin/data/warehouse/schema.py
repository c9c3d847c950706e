"""The warehouse's tables: one declared schema each, shared by ``synth``, ``import`` and
``audience``.

A :class:`TableSpec` names the columns (Arrow types), which may be null, the key that must
be unique, the columns that hold phone numbers (normalised to E.164 on import) and
the allowed values of categorical columns. This module is the contract: the synthetic
operator writes exactly these columns, the importer validates against them, and the
audience layer reads them.

Money is in yuan (float64), data in MB, voice in minutes. Dates are ``date32``; event
times are ``timestamp[us]`` in China Standard Time, stored naive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    nullable: bool = False
    choices: tuple[str, ...] | None = None
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    msisdn_columns: tuple[str, ...] = ()
    doc: str = ""
    # Columns the importer derives itself and a file need not carry.
    derived: tuple[str, ...] = field(default=())

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns]
        )

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


C = Column
STR, I8, I16, I32, I64 = pa.string(), pa.int8(), pa.int16(), pa.int32(), pa.int64()
F64, DATE, TS, BOOL = pa.float64(), pa.date32(), pa.timestamp("us"), pa.bool_()

CARRIERS = ("china_mobile", "china_unicom", "china_telecom", "china_broadnet", "other")
PAYMENT = ("prepaid", "postpaid")
STATUS = ("active", "suspended", "double_stop", "churned")
CHANNELS = ("hall", "app", "web", "hotline", "sms_hall")

PLANS = TableSpec(
    name="plans",
    doc="The plan catalogue: tiers with allowances, overage tariffs and contract lengths.",
    key=("plan_id",),
    columns=(
        C("plan_id", STR, doc="catalogue code, e.g. P4G-058"),
        C("name", STR, doc="marketing name"),
        C("tier", I8, doc="1 (cheapest) .. 8; plan fit moves at most one tier"),
        C("payment", STR, choices=PAYMENT),
        C("monthly_fee", F64, doc="yuan per month"),
        C("data_mb", I64, doc="data allowance per month, MB"),
        C("voice_min", I32, doc="voice allowance per month, minutes"),
        C("sms", I32, doc="SMS allowance per month"),
        C("overage_data_per_mb", F64, doc="yuan per MB over the allowance"),
        C("overage_voice_per_min", F64, doc="yuan per minute over the allowance"),
        C("overage_sms", F64, doc="yuan per SMS over the allowance"),
        C("contract_months", I16, doc="0 for no contract"),
        C("generation", I8, doc="network generation the plan is sold for: 4 or 5"),
    ),
)

SUBSCRIBERS = TableSpec(
    name="subscribers",
    doc="One row per subscriber: who they are and what they hold.",
    key=("subscriber_id",),
    msisdn_columns=("msisdn",),
    derived=("carrier",),
    columns=(
        C("subscriber_id", I64),
        C("msisdn", STR, doc="E.164, e.g. +8613812345678"),
        C("carrier", STR, choices=CARRIERS, doc="from the number range"),
        C("plan_id", STR),
        C("payment", STR, choices=PAYMENT),
        C("status", STR, choices=STATUS),
        C("gender", STR, nullable=True, choices=("F", "M")),
        C("birthday", DATE, nullable=True),
        C("entry_date", DATE, doc="network-entry date (入网日期)"),
        C("contract_end", DATE, nullable=True, doc="end of the plan contract, if any"),
        C("star_level", I8, doc="operator star level 0..7"),
        C("region", STR, doc="district of the billing address"),
        C("handset_model", STR, nullable=True),
        C("handset_generation", I8, nullable=True, doc="2, 3, 4 or 5"),
        C("app_user", BOOL, doc="has ever logged in to the operator's app"),
        C("suspended_since", DATE, nullable=True, doc="prepaid barring start, if suspended"),
    ),
)

USAGE_MONTHLY = TableSpec(
    name="usage_monthly",
    doc="One row per subscriber and month: usage, bill, top-ups, roaming.",
    key=("subscriber_id", "month"),
    columns=(
        C("subscriber_id", I64),
        C("month", DATE, doc="first day of the month"),
        C("plan_id", STR, doc="plan held that month; a change shows up/downgrades"),
        C("data_mb", F64),
        C("voice_min", F64),
        C("sms", I32),
        C("bill", F64, doc="yuan charged for the month, overage included"),
        C("topup_count", I16, doc="number of top-ups (prepaid)"),
        C("topup_amount", F64, doc="yuan topped up"),
        C("roaming_days_domestic", I16),
        C("roaming_days_international", I16),
    ),
)

CELLS = TableSpec(
    name="cells",
    doc="Base-station cells with their position.",
    key=("cell_id",),
    columns=(
        C("cell_id", STR),
        C("lat", F64),
        C("lon", F64),
        C("district", STR),
        C(
            "kind",
            STR,
            choices=("residential", "business", "transport", "airport", "rail", "hospital",
                     "mall", "campus", "scenic", "suburban", "hall"),
            doc="land use around the cell; 'hall' is a cell serving an operator hall",
        ),
    ),
)

LOCATION_EVENTS = TableSpec(
    name="location_events",
    doc="Signalling events that place a subscriber in a cell at a time.",
    columns=(
        C("subscriber_id", I64),
        C("ts", TS),
        C("cell_id", STR),
        C("country", STR, doc="ISO 3166 alpha-2 of the visited network; CN at home"),
    ),
)

PRODUCTS = TableSpec(
    name="products",
    doc="Add-on products and services that subscribers can hold.",
    key=("product_id",),
    columns=(
        C("product_id", STR),
        C("name", STR),
        C(
            "category",
            STR,
            choices=("data_pack", "voice_pack", "broadband", "iptv", "ringback", "family",
                     "roaming_pack", "video", "music", "insurance", "cloud"),
        ),
        C("monthly_fee", F64),
    ),
)

HOLDINGS = TableSpec(
    name="holdings",
    doc="Which subscriber holds which product, from when to when.",
    key=("subscriber_id", "product_id", "start_date"),
    columns=(
        C("subscriber_id", I64),
        C("product_id", STR),
        C("start_date", DATE),
        C("end_date", DATE, nullable=True),
    ),
)

COMPLAINTS = TableSpec(
    name="complaints",
    doc="Complaints, by category; marketing-SMS complaints mark complaint sensitivity.",
    columns=(
        C("subscriber_id", I64),
        C("ts", TS),
        C("category", STR, choices=("billing", "network", "marketing_sms", "service", "other")),
        C("channel", STR, choices=CHANNELS),
    ),
)

CHANNEL_CONTACTS = TableSpec(
    name="channel_contacts",
    doc="Contacts through the operator's channels: hall visits, app/web logins, hotline calls.",
    columns=(
        C("subscriber_id", I64),
        C("ts", TS),
        C("channel", STR, choices=CHANNELS),
        C("purpose", STR, choices=("query", "order", "topup", "payment", "complaint", "other")),
    ),
)

OFFERS = TableSpec(
    name="offers",
    doc="Past offers sent to subscribers and whether they took them (training labels).",
    key=("offer_id",),
    columns=(
        C("offer_id", STR),
        C("subscriber_id", I64),
        C("product_id", STR),
        C("sent_at", TS),
        C("channel", STR, choices=("sms", "app", "hall", "hotline")),
        C("responded", BOOL),
        C("responded_at", TS, nullable=True),
    ),
)

CHURN_LABELS = TableSpec(
    name="churn_labels",
    doc="Whether a subscriber active at ``as_of`` churned within the next three months.",
    key=("subscriber_id", "as_of"),
    columns=(
        C("subscriber_id", I64),
        C("as_of", DATE, doc="first day of the month the label is observed from"),
        C("churned_3m", BOOL),
        C("churn_date", DATE, nullable=True),
    ),
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        PLANS,
        SUBSCRIBERS,
        USAGE_MONTHLY,
        CELLS,
        LOCATION_EVENTS,
        PRODUCTS,
        HOLDINGS,
        COMPLAINTS,
        CHANNEL_CONTACTS,
        OFFERS,
        CHURN_LABELS,
    )
}


def table_spec(name: str) -> TableSpec:
    """The spec of a warehouse table, or a :class:`~jingxin.errors.InputError` naming the
    known tables."""
    from jingxin.errors import InputError

    try:
        return TABLES[name]
    except KeyError:
        raise InputError(
            f"unknown warehouse table {name!r}; known tables: {', '.join(TABLES)}"
        ) from None
