"""Example segments: named specs to start from (the API's ``GET /segments``, the console's
segment picker). jingxin keeps no library of saved segments - a segment is a spec file
(``jingxin audience count SPEC``) or a spec sent inline - so these are starting points,
each valid against the field catalogue (``tests/e2e/api`` checks them).

``needs`` says what the warehouse must hold for the spec to count: ``subscribers`` (and
``plans``) always; ``features`` once ``jingxin audience features`` has run; ``cells`` for
the composite model's nearest hall.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    name: str
    description: str
    spec: dict[str, Any]
    needs: tuple[str, ...] = field(default=("subscribers",))


EXAMPLES: tuple[Example, ...] = (
    Example(
        name="vip-active",
        description="Active subscribers of star level 5 and up (全球通 VIP care).",
        spec={"name": "vip-active", "where": {"all": [
            {"field": "status", "op": "eq", "value": "active"},
            {"field": "star_level", "op": "ge", "value": 5}]}},
    ),
    Example(
        name="postpaid-upper-tiers",
        description="Active postpaid subscribers on a plan of tier 3 or more.",
        spec={"name": "postpaid-upper-tiers", "where": {"all": [
            {"field": "status", "op": "eq", "value": "active"},
            {"field": "plan.payment", "op": "eq", "value": "postpaid"},
            {"field": "plan.tier", "op": "ge", "value": 3}]}},
        needs=("subscribers", "plans"),
    ),
    Example(
        name="app-users-sample",
        description="A deterministic 10% sample of active app users (a test audience).",
        spec={"name": "app-users-sample", "where": {"all": [
            {"field": "status", "op": "eq", "value": "active"},
            {"field": "app_user", "op": "eq", "value": True}]},
            "sample": {"fraction": 0.1, "seed": 7}},
    ),
    Example(
        name="4g-handset-upgrade",
        description="Heavy data users on a 4G (or older) handset: handset upgrade offers.",
        spec={"name": "4g-handset-upgrade", "where": {"all": [
            {"field": "status", "op": "eq", "value": "active"},
            {"field": "handset_upgrade", "op": "eq", "value": True}]}},
        needs=("subscribers", "features"),
    ),
    Example(
        name="data-lovers-top-arpu",
        description="Data-heavy subscribers not sensitive to price, the 50,000 of highest "
        "ARPU (docs/audience.md).",
        spec={"name": "data-lovers-top-arpu", "where": {"all": [
            {"field": "product_preference", "op": "eq", "value": "data_heavy"},
            {"field": "price_sensitivity", "op": "le", "value": 0.4},
            {"not": {"field": "complaint_sensitive", "op": "eq", "value": True}}]},
            "limit": {"n": 50000, "order_by": [{"field": "arpu", "desc": True}]}},
        needs=("subscribers", "features"),
    ),
    Example(
        name="pudong-composite",
        description="The composite model: resident in 浦东新区, data-heavy, price "
        "sensitivity under 0.5, complaint-sensitive subscribers excluded; with each "
        "subscriber's offer channel and nearest hall.",
        spec={"name": "pudong-composite", "composite": {
            "area": {"districts": ["浦东新区"]}, "preference": "data_heavy",
            "max_price_sensitivity": 0.5, "channel": "any"}},
        needs=("subscribers", "features", "cells"),
    ),
)  # fmt: skip
