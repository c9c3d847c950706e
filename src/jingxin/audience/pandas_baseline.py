"""Plain-pandas versions of the bulk computations, for the benchmarks' baselines only.

They compute the same thing as the warehouse versions (usage averages, preference, trend
and plan-fit flag; plan recommendation; home cells) the way one would in a notebook, so
that ``jingxin bench`` can report how much the warehouse path gains.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from jingxin.audience.window import AsOf


def usage_features(usage: pd.DataFrame, plans: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    w = AsOf(as_of)
    month = pd.to_datetime(usage["month"])
    last3 = usage[(month >= pd.Timestamp(w.months_back(2))) & (month < pd.Timestamp(as_of))]
    g = last3.groupby("subscriber_id")
    out = pd.DataFrame({"arpu": g["bill"].sum() / 3, "data": g["data_mb"].sum() / 3,
                        "voice": g["voice_min"].sum() / 3})
    ds = out["data"] / max(out["data"].mean(), 1.0)
    vs = out["voice"] / max(out["voice"].mean(), 1.0)
    out["pref"] = np.select([ds > vs * 1.5, vs > ds * 1.5], ["data_heavy", "voice_heavy"],
                            "balanced")
    last = usage[month == pd.Timestamp(w.months_back(0))].set_index("subscriber_id")["data_mb"]
    before = usage[(month >= pd.Timestamp(w.months_back(3)))
                   & (month < pd.Timestamp(w.months_back(0)))]
    prev = before.groupby("subscriber_id")["data_mb"].mean()
    ratio = (last / prev).reindex(out.index)
    out["trend"] = np.select([ratio >= 1.5, ratio <= 0.5], ["surge", "drop"], "stable")
    j = last3.merge(plans[["plan_id", "data_mb", "voice_min"]], on="plan_id",
                    suffixes=("", "_allow"))
    j["over"] = (j["data_mb"] > j["data_mb_allow"]) | (j["voice_min"] > j["voice_min_allow"])
    out["over_months"] = j.groupby("subscriber_id")["over"].sum()
    return out


def plan_fit(subs: pd.DataFrame, usage: pd.DataFrame, plans: pd.DataFrame,
             as_of: dt.date) -> pd.DataFrame:
    w = AsOf(as_of)
    month = pd.to_datetime(usage["month"])
    last3 = usage[(month >= pd.Timestamp(w.months_back(2))) & (month < pd.Timestamp(as_of))]
    g = last3.groupby("subscriber_id")
    avg = g[["data_mb", "voice_min", "sms"]].mean()[g.size() == 3]
    cur = subs[["subscriber_id", "plan_id"]].merge(plans[["plan_id", "tier", "payment"]],
                                                    on="plan_id").join(avg, on="subscriber_id",
                                                                       how="inner")
    pairs = cur.merge(plans.add_prefix("c_"), left_on="payment", right_on="c_payment")
    pairs = pairs[(pairs["c_tier"] - pairs["tier"]).abs() <= 1]
    pairs["cost"] = (pairs["c_monthly_fee"]
                     + (pairs["data_mb"] - pairs["c_data_mb"]).clip(lower=0)
                     * pairs["c_overage_data_per_mb"]
                     + (pairs["voice_min"] - pairs["c_voice_min"]).clip(lower=0)
                     * pairs["c_overage_voice_per_min"]
                     + (pairs["sms"] - pairs["c_sms"]).clip(lower=0) * pairs["c_overage_sms"])
    best = pairs.loc[pairs.groupby("subscriber_id")["cost"].idxmin()]
    return best[["subscriber_id", "c_plan_id", "cost"]]


def resident_cells(events: pd.DataFrame, as_of: dt.date, *, days: int = 14,
                   cap: int = 4 * 3600) -> pd.Series:
    """Home cell per subscriber (same rules as residence.py)."""
    end = pd.Timestamp(as_of)
    e = events[(events["ts"] >= end - pd.Timedelta(days=days)) & (events["ts"] < end)
               & (events["country"] == "CN")]
    e = e.sort_values(["subscriber_id", "ts", "cell_id"])
    nxt = e.groupby("subscriber_id")["ts"].shift(-1)
    dwell = ((nxt - e["ts"]).dt.total_seconds().fillna(1800)).clip(upper=cap)
    e = e.assign(dwell=dwell, hour=e["ts"].dt.hour)
    night = e[(e["hour"] >= 21) | (e["hour"] < 7)]
    per = night.groupby(["subscriber_id", "cell_id"], as_index=False)["dwell"].sum()
    per = per.sort_values(["subscriber_id", "dwell", "cell_id"], ascending=[True, False, True])
    return per.drop_duplicates("subscriber_id").set_index("subscriber_id")["cell_id"].rename(
        "home_cell")
