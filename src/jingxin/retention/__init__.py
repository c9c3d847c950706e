"""Retention: double-stop (双停) subscribers extracted daily into work orders for their
branch, the orders' lifecycle, and the reactivation rate per branch.

- :mod:`jingxin.retention.double_stop` - the daily extraction from the warehouse;
- :mod:`jingxin.retention.workorders` - transitions, the worklist, the rate.
"""

from jingxin.retention.double_stop import ExtractReport, extract
from jingxin.retention.workorders import (
    TRANSITIONS,
    BranchRate,
    list_orders,
    reactivation_rate,
    transition,
)

__all__ = ["TRANSITIONS", "BranchRate", "ExtractReport", "extract", "list_orders",
           "reactivation_rate", "transition"]
