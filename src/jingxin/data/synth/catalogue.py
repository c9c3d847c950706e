"""The plan catalogue and the add-on products: fixed tables, the same in every run.

Plans come in eight tiers. Every tier is sold postpaid; tiers 1-5 are also sold prepaid;
tiers 3-8 also exist as 5G plans (dearer, more data); postpaid plans from tier 3 up are
also sold on a 24-month contract at a discount. Overage tariffs fall with the tier, so
chronic over-users of a cheap plan see bill shock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from jingxin.data.warehouse.schema import PLANS, PRODUCTS

# tier: fee (yuan), data (MB), voice (min), SMS, overage per MB / per min
TIERS = {
    1: (8.0, 500, 50, 0, 0.10, 0.19),
    2: (19.0, 3072, 100, 50, 0.05, 0.15),
    3: (38.0, 10240, 200, 100, 0.03, 0.15),
    4: (58.0, 20480, 300, 100, 0.01, 0.15),
    5: (88.0, 40960, 500, 200, 0.005, 0.12),
    6: (128.0, 61440, 800, 300, 0.005, 0.10),
    7: (198.0, 102400, 1500, 500, 0.003, 0.10),
    8: (298.0, 204800, 3000, 1000, 0.003, 0.10),
}
NAMES = {1: "畅聊卡", 2: "轻享套餐", 3: "畅享套餐", 4: "畅享套餐", 5: "畅享套餐",
         6: "尊享套餐", 7: "尊享套餐", 8: "全球通尊享"}


@dataclass(frozen=True)
class Plan:
    plan_id: str
    name: str
    tier: int
    payment: str
    monthly_fee: float
    data_mb: int
    voice_min: int
    sms: int
    overage_data_per_mb: float
    overage_voice_per_min: float
    overage_sms: float
    contract_months: int
    generation: int


def _plan(tier: int, generation: int, payment: str, contract: int) -> Plan:
    fee, data, voice, sms, over_mb, over_min = TIERS[tier]
    if generation == 5:  # 5G: 15% dearer, half as much data again
        fee, data = round(fee * 1.15), int(data * 1.5)
    if contract:  # contract plans trade a 24-month commitment for 10% off
        fee = round(fee * 0.9)
    code = "Y" if payment == "prepaid" else "P"
    plan_id = f"{code}{generation}G-{int(fee):03d}" + (f"-C{contract}" if contract else "")
    name = f"{'5G' if generation == 5 else '4G'}{NAMES[tier]}{int(fee)}元" + (
        f"({contract}个月合约)" if contract else "")
    return Plan(plan_id, name, tier, payment, float(fee), data, voice, sms, over_mb,
                over_min, 0.10, contract, generation)


def plans() -> tuple[Plan, ...]:
    out = []
    for tier in TIERS:
        for generation in (4, 5) if tier >= 3 else (4,):
            if tier <= 5:
                out.append(_plan(tier, generation, "prepaid", 0))
            out.append(_plan(tier, generation, "postpaid", 0))
            if tier >= 3:
                out.append(_plan(tier, generation, "postpaid", 24))
    return tuple(out)


PLAN_LIST = plans()


@dataclass(frozen=True)
class PlanArrays:
    """The catalogue as numpy columns, indexed by plan code (position in PLAN_LIST)."""

    ids: pa.Array
    tier: np.ndarray
    prepaid: np.ndarray
    fee: np.ndarray
    data_mb: np.ndarray
    voice_min: np.ndarray
    sms: np.ndarray
    over_mb: np.ndarray
    over_min: np.ndarray
    over_sms: np.ndarray
    contract: np.ndarray
    generation: np.ndarray

    def code(self, *, tier: np.ndarray, prepaid: np.ndarray, generation: np.ndarray,
             contract: np.ndarray) -> np.ndarray:
        """Plan code for each (tier, payment, generation, contract) request; requests the
        catalogue lacks fall back to the nearest sold variant (no prepaid above tier 5, no
        5G below tier 3, no contract below tier 3 or on prepaid)."""
        tier = np.clip(tier, 1, 8)
        prepaid = prepaid & (tier <= 5)
        generation = np.where(tier >= 3, generation, 4)
        contract = np.where(prepaid | (tier < 3), 0, contract)
        return LOOKUP[tier, prepaid.astype(int), (generation == 5).astype(int),
                      (contract > 0).astype(int)]


def _arrays() -> tuple[PlanArrays, np.ndarray]:
    col = {f: np.array([getattr(p, f) for p in PLAN_LIST]) for f in Plan.__dataclass_fields__}
    arrays = PlanArrays(
        ids=pa.array(col["plan_id"].tolist(), pa.string()), tier=col["tier"].astype(np.int64),
        prepaid=col["payment"] == "prepaid", fee=col["monthly_fee"].astype(float),
        data_mb=col["data_mb"].astype(float), voice_min=col["voice_min"].astype(float),
        sms=col["sms"].astype(float), over_mb=col["overage_data_per_mb"].astype(float),
        over_min=col["overage_voice_per_min"].astype(float),
        over_sms=col["overage_sms"].astype(float), contract=col["contract_months"],
        generation=col["generation"])
    lookup = np.full((9, 2, 2, 2), -1, dtype=np.int64)
    for i, p in enumerate(PLAN_LIST):
        lookup[p.tier, int(p.payment == "prepaid"), int(p.generation == 5),
               int(p.contract_months > 0)] = i
    return arrays, lookup


PLAN_ARRAYS, LOOKUP = _arrays()


def plans_table() -> pa.Table:
    rows = {f.name: [getattr(p, f.name) for p in PLAN_LIST] for f in PLANS.schema}
    return pa.Table.from_pydict(rows, schema=PLANS.schema)


# product_id, name, category, monthly fee
PRODUCT_LIST: tuple[tuple[str, str, str, float], ...] = (
    ("DP-1G", "1GB流量包", "data_pack", 10.0),
    ("DP-5G", "5GB流量包", "data_pack", 20.0),
    ("DP-10G", "10GB流量包", "data_pack", 30.0),
    ("DP-30G", "30GB畅享流量包", "data_pack", 50.0),
    ("DP-NIGHT", "夜间流量包", "data_pack", 9.0),
    ("VP-100", "100分钟语音包", "voice_pack", 10.0),
    ("VP-300", "300分钟语音包", "voice_pack", 25.0),
    ("BB-100M", "100M宽带", "broadband", 50.0),
    ("BB-300M", "300M宽带", "broadband", 80.0),
    ("BB-1000M", "千兆宽带", "broadband", 120.0),
    ("TV-BASIC", "IPTV基础包", "iptv", 20.0),
    ("TV-PLUS", "IPTV影视会员", "iptv", 40.0),
    ("RB-CL", "彩铃", "ringback", 5.0),
    ("FM-SHARE", "家庭共享", "family", 20.0),
    ("FM-MEMBER", "亲情副卡", "family", 10.0),
    ("RM-ASIA", "亚洲漫游包", "roaming_pack", 30.0),
    ("RM-GLOBAL", "全球漫游包", "roaming_pack", 68.0),
    ("VD-TENCENT", "腾讯视频会员", "video", 15.0),
    ("VD-IQIYI", "爱奇艺会员", "video", 15.0),
    ("VD-MIGU", "咪咕视频", "video", 12.0),
    ("MU-MIGU", "咪咕音乐", "music", 10.0),
    ("IN-PHONE", "手机碎屏险", "insurance", 12.0),
    ("IN-ACCIDENT", "意外险", "insurance", 8.0),
    ("CL-50G", "和彩云50G", "cloud", 6.0),
    ("CL-200G", "和彩云200G", "cloud", 15.0),
)
PRODUCT_INDEX = {p[0]: i for i, p in enumerate(PRODUCT_LIST)}
PRODUCT_IDS = pa.array([p[0] for p in PRODUCT_LIST], pa.string())
PRODUCT_CATEGORY = np.array([p[2] for p in PRODUCT_LIST])


def products_table() -> pa.Table:
    cols = list(zip(*PRODUCT_LIST, strict=True))
    return pa.Table.from_arrays([pa.array(list(c)) for c in cols], schema=PRODUCTS.schema)
