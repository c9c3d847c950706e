"""Cross-sell: association rules over product holdings ("holders of X also take Y").

Baskets are the products each subscriber holds on the as-of date (started on or before
it, not ended). Frequent itemsets come from FP-growth and rules from
``association_rules``, both from mlxtend (maintained, pure Python, on PyPI); each rule
carries support, confidence and lift, and a sentence for the retention staff.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

from jingxin.audience.source import read
from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.data.warehouse.connection import Warehouse


def baskets(warehouse: Warehouse, *, as_of: dt.date) -> pd.DataFrame:
    """One boolean column per product, one row per subscriber holding anything."""
    h = read(warehouse, "holdings")
    h = h.filter((h.start_date <= as_of) & (h.end_date.isnull() | (h.end_date > as_of)))
    pairs = h.select("subscriber_id", "product_id").distinct().to_pandas()
    if pairs.empty:
        raise InputError(f"no product holdings on {as_of}")
    pairs["held"] = True
    wide = pairs.pivot_table(index="subscriber_id", columns="product_id", values="held",
                             aggfunc="any", fill_value=False)
    return wide.astype(bool)


def rules(warehouse: Warehouse, *, as_of: dt.date, min_support: float = 0.01,
          min_confidence: float = 0.2, min_lift: float = 1.0) -> pd.DataFrame:
    """Rules X → Y sorted by lift: antecedents, consequents, support, confidence, lift,
    holders (subscribers with X and Y), sentence."""
    association_rules, fpgrowth = _mlxtend()
    wide = baskets(warehouse, as_of=as_of)
    itemsets = fpgrowth(wide, min_support=min_support, use_colnames=True)
    columns = ["antecedents", "consequents", "support", "confidence", "lift", "holders",
               "sentence"]
    if itemsets.empty or itemsets["itemsets"].map(len).max() < 2:
        return pd.DataFrame(columns=columns)
    r = association_rules(itemsets, metric="confidence", min_threshold=min_confidence)
    r = r[r["lift"] >= min_lift].copy()
    names = _names(warehouse)
    r["antecedents"] = r["antecedents"].map(lambda s: ", ".join(sorted(s)))
    r["consequents"] = r["consequents"].map(lambda s: ", ".join(sorted(s)))
    r["holders"] = (r["support"] * len(wide)).round().astype("int64")
    r["sentence"] = [
        f"持有{_label(a, names)}的用户中{c:.0%}也办理了{_label(b, names)}（提升度{lift:.2f}）"
        for a, b, c, lift in zip(r["antecedents"], r["consequents"], r["confidence"],
                                 r["lift"], strict=True)
    ]
    r = r.sort_values(["lift", "confidence", "antecedents", "consequents"],
                      ascending=[False, False, True, True])
    return r[columns].round({"support": 4, "confidence": 4, "lift": 4}).reset_index(drop=True)


def _mlxtend():
    """mlxtend's two functions. Its import runs ``warnings.simplefilter("always",
    DeprecationWarning)``, which would change the whole process's warning filters; the
    import happens inside ``catch_warnings`` so that the change is undone."""
    import warnings

    with warnings.catch_warnings():
        from mlxtend.frequent_patterns import association_rules, fpgrowth
    return association_rules, fpgrowth


def _names(warehouse: Warehouse) -> dict[str, str]:
    p = read(warehouse, "products", columns=["product_id", "name"])
    rows = p.select("product_id", "name").to_pyarrow().to_pylist()
    return {r["product_id"]: r["name"] for r in rows}


def _label(ids: str, names: dict[str, str]) -> str:
    return "、".join(names.get(i, i) for i in ids.split(", "))
