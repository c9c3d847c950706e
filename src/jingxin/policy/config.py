"""Policy configuration: the rule settings of each tenant, validated at the edge.

:class:`TenantRules` holds every knob one tenant may set (quiet hours, caps, blackout days,
complaint cool-off, implied consent); :class:`PolicyConfig` maps tenant ids to their rules.
A tenant that is not in the map is unknown: its candidates are rejected with
``unknown_tenant``. Overrides stored in ``tenants.settings["policy"]`` are merged onto the
defaults by :meth:`PolicyConfig.build`.
"""

from __future__ import annotations

from datetime import date, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jingxin.domain.candidate import Category
from jingxin.errors import PolicyError

MINUTES_PER_DAY = 24 * 60


class CapLimits(BaseModel):
    """At most this many contacts per local day / ISO week / calendar month (None: no cap)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: int | None = Field(default=None, ge=0)
    week: int | None = Field(default=None, ge=0)
    month: int | None = Field(default=None, ge=0)

    def limits(self) -> tuple[int | None, int | None, int | None]:
        return (self.day, self.week, self.month)


def default_category_caps() -> dict[Category, CapLimits]:
    # Marketing: one a day, two a week, four a month - an operator's usual promise.
    # Notifications are service messages: uncapped unless a tenant says otherwise.
    return {
        Category.MARKETING: CapLimits(day=1, week=2, month=4),
        Category.NOTIFICATION: CapLimits(),
    }


class TenantRules(BaseModel):
    """The rule settings of one tenant (the defaults are the operator's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    notification_quiet_hours: bool = False
    caps: dict[Category, CapLimits] = Field(default_factory=default_category_caps)
    campaign_caps: CapLimits = Field(default_factory=lambda: CapLimits(day=1))
    blackout_dates: frozenset[date] = frozenset()
    blackout_action: Literal["defer", "reject"] = "defer"
    blackout_horizon_days: int = Field(default=31, ge=1, le=366)
    cooloff_days: int = Field(default=30, ge=0)
    implied_consent: bool = False
    default_timezone: str = "Asia/Shanghai"

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _whole_minutes(cls, value: time) -> time:
        return value.replace(second=0, microsecond=0)

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def quiet_start_minute(self) -> int:
        return self.quiet_start.hour * 60 + self.quiet_start.minute

    @property
    def quiet_end_minute(self) -> int:
        return self.quiet_end.hour * 60 + self.quiet_end.minute

    @property
    def has_quiet_hours(self) -> bool:
        return self.quiet_start_minute != self.quiet_end_minute

    @property
    def day_start_minute(self) -> int:
        """The first allowed minute of a day: where a blackout deferral lands."""
        return self.quiet_end_minute if self.has_quiet_hours else 0

    def category_caps(self, category: str) -> tuple[int | None, int | None, int | None]:
        if category == Category.OTP:
            return (None, None, None)
        limits = self.caps.get(Category(category))
        return limits.limits() if limits else (None, None, None)

    def quiet_hours_apply(self, category: str) -> bool:
        if category == Category.MARKETING:
            return self.has_quiet_hours
        if category == Category.NOTIFICATION:
            return self.has_quiet_hours and self.notification_quiet_hours
        return False


class PolicyConfig(BaseModel):
    """Every known tenant and its rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenants: dict[str, TenantRules] = Field(default_factory=dict)

    def rules_for(self, tenant_id: str | None) -> TenantRules | None:
        """The tenant's rules, or None for an unknown tenant."""
        if tenant_id is None:
            return None
        return self.tenants.get(tenant_id)

    @classmethod
    def build(
        cls,
        overrides: dict[str, dict[str, Any]],
        *,
        defaults: dict[str, Any] | None = None,
    ) -> PolicyConfig:
        """Rules for each tenant: ``defaults`` with the tenant's own overrides on top.

        A bad override raises :class:`PolicyError` naming the tenant and the field.
        """
        base = dict(defaults or {})
        tenants: dict[str, TenantRules] = {}
        for tenant_id, own in overrides.items():
            try:
                tenants[tenant_id] = TenantRules.model_validate({**base, **own})
            except ValidationError as exc:
                fields = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                )
                raise PolicyError(f"policy settings of tenant {tenant_id!r}: {fields}") from exc
        return cls(tenants=tenants)
