"""The tables of the operational store, split by concern; import them from here.

Adding a table: put the class in the module of its concern (or a new one), import it
below, then add a migration under ``jingxin/data/store/migrations/versions/``;
``jingxin db check`` fails until the two agree.
"""

from jingxin.data.store.models.access import (
    CALLBACK_KINDS,
    CALLBACK_STATES,
    ApiKey,
    CallbackDelivery,
    CallbackEndpoint,
    ConsoleSession,
    User,
)
from jingxin.data.store.models.analytics import (
    EVENT_KINDS,
    AnalyticsEvent,
    EventMark,
    ExperimentAssignment,
    LinkClick,
)
from jingxin.data.store.models.audit import OUTCOMES, AuditEntry, DecisionRecord
from jingxin.data.store.models.base import Base, UtcDateTime, utc_now
from jingxin.data.store.models.contact import (
    CONSENT_CATEGORIES,
    CONSENT_CHANNELS,
    OPT_OUT_SOURCES,
    BlacklistEntry,
    Consent,
    LedgerEntry,
    OptOut,
    SubscriberState,
)
from jingxin.data.store.models.content import (
    CAMPAIGN_STATUSES,
    CATEGORIES,
    TEMPLATE_STATUSES,
    Campaign,
    Template,
)
from jingxin.data.store.models.dispatch import (
    PART_STATES,
    MessagePart,
    NumberFailure,
    UnmatchedReceipt,
)
from jingxin.data.store.models.hall import (
    BossAccount,
    BossHolding,
    BossOrder,
    BossProduct,
    HallComplaint,
    HallFeedback,
    HallInteraction,
    HallOrder,
    HallReferral,
    HallSession,
    HallStaff,
    Merchant,
    PointsEntry,
    ProbeRun,
    Voucher,
)
from jingxin.data.store.models.handlers import MO_OUTCOMES, MoOutcome
from jingxin.data.store.models.geofence import FenceRow
from jingxin.data.store.models.journeys import (
    GiftClaim,
    JourneyEnrolment,
    JourneyEvent,
    JourneyRun,
    SchedulerLock,
    WorkOrder,
    WorkOrderEvent,
)
from jingxin.data.store.models.inbox import MoMessage, MoPartRow
from jingxin.data.store.models.messages import LANES, MESSAGE_STATES, Message, Receipt
from jingxin.data.store.models.tenants import DEFAULT_TENANT_ID, DEFAULT_TIMEZONE, Tenant

__all__ = [
    "CALLBACK_KINDS",
    "CALLBACK_STATES",
    "ApiKey",
    "CallbackDelivery",
    "CallbackEndpoint",
    "ConsoleSession",
    "User",
    "FenceRow",
    "EVENT_KINDS",
    "AnalyticsEvent",
    "EventMark",
    "ExperimentAssignment",
    "LinkClick",
    "CAMPAIGN_STATUSES",
    "CATEGORIES",
    "CONSENT_CATEGORIES",
    "CONSENT_CHANNELS",
    "DEFAULT_TENANT_ID",
    "DEFAULT_TIMEZONE",
    "LANES",
    "MESSAGE_STATES",
    "MO_OUTCOMES",
    "OPT_OUT_SOURCES",
    "OUTCOMES",
    "PART_STATES",
    "TEMPLATE_STATUSES",
    "AuditEntry",
    "Base",
    "BlacklistEntry",
    "BossAccount",
    "BossHolding",
    "BossOrder",
    "BossProduct",
    "Campaign",
    "Consent",
    "DecisionRecord",
    "GiftClaim",
    "HallComplaint",
    "HallFeedback",
    "HallInteraction",
    "HallOrder",
    "HallReferral",
    "HallSession",
    "HallStaff",
    "JourneyEnrolment",
    "JourneyEvent",
    "JourneyRun",
    "LedgerEntry",
    "Merchant",
    "Message",
    "MessagePart",
    "MoMessage",
    "MoOutcome",
    "MoPartRow",
    "NumberFailure",
    "OptOut",
    "PointsEntry",
    "ProbeRun",
    "Receipt",
    "SchedulerLock",
    "SubscriberState",
    "Template",
    "Tenant",
    "UnmatchedReceipt",
    "UtcDateTime",
    "Voucher",
    "WorkOrder",
    "WorkOrderEvent",
    "utc_now",
]
