"""What each role may do: one table, read by the API, the console and the CLI's checks.

Permissions are ``<resource>.<verb>`` strings. Every role works inside its own tenant;
``tenants.manage`` (the operator's admin only) is the one permission that reaches across
tenants. ``numbers.view`` is the right to see whole subscriber numbers: without it, lists,
exports and pages show them masked (138****5678).
"""

from __future__ import annotations

from jingxin.errors import InputError

READ = frozenset({
    "segments.read", "templates.read", "campaigns.read", "journeys.read", "fences.read",
    "hall.read", "inbox.read", "reports.read", "messages.read", "probes.read",
    "workorders.read", "dashboard.read",
})  # fmt: skip
MARKETING = frozenset({
    "segments.write", "templates.write", "campaigns.write", "campaigns.control",
    "journeys.write", "fences.write", "hall.write", "workorders.write", "probes.run",
})  # fmt: skip
ADMIN = frozenset({"users.manage", "keys.manage", "callbacks.manage", "audit.read",
                   "numbers.view", "templates.review", "send"})  # fmt: skip

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": READ | MARKETING | ADMIN,
    "marketer": READ | MARKETING,
    "reviewer": READ | {"templates.review"},
    "analyst": READ,
    "auditor": READ | {"audit.read"},
    # An enterprise's system: send, follow its messages and replies, read its reports,
    # manage its templates and its callback URL. It sees the numbers it sent to.
    "api-client": frozenset({"send", "messages.read", "inbox.read", "reports.read",
                             "templates.read", "templates.write", "callbacks.manage",
                             "numbers.view"}),  # fmt: skip
}
OPERATOR_ONLY = frozenset({"tenants.manage"})  # granted to the operator tenant's admins
ALL_PERMISSIONS = frozenset().union(*PERMISSIONS.values()) | OPERATOR_ONLY
ROLES = tuple(PERMISSIONS)


def permissions_of(role: str, *, operator: bool) -> frozenset[str]:
    """The permissions of ``role``; the operator's admins may also manage tenants."""
    granted = PERMISSIONS.get(role, frozenset())
    if operator and role == "admin":
        granted = granted | OPERATOR_ONLY
    return granted


def check_role(role: str, *, field: str = "role") -> str:
    """``role`` if it is one of :data:`ROLES`, else an InputError naming the field."""
    if role not in PERMISSIONS:
        raise InputError(f"{field}: unknown role {role!r}; expected one of {', '.join(ROLES)}")
    return role
