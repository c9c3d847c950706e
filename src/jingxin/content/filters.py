"""The template filters an operator's SMS needs: money, masked numbers, Chinese dates, data.

Each takes a plain value and returns text; none touches anything outside its arguments,
so they are safe to offer inside the sandbox.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def yuan(value: Any, digits: int = 2) -> str:
    """``58`` → ``58元``; ``12.5`` → ``12.50元`` (whole amounts drop the decimals)."""
    amount = _decimal(value)
    if amount == amount.to_integral_value():
        return f"{amount.to_integral_value():f}元"
    quantum = Decimal(1).scaleb(-digits)
    return f"{amount.quantize(quantum, rounding=ROUND_HALF_UP):f}元"


def signed_yuan(value: Any) -> str:
    """A fee change: ``5`` → ``多5元``, ``-3.2`` → ``少3.20元``, ``0`` → ``持平``."""
    amount = _decimal(value)
    if amount == 0:
        return "持平"
    return ("多" if amount > 0 else "少") + yuan(abs(amount))


def mask(value: Any) -> str:
    """``13812345678`` → ``138****5678``; other identifiers keep their first 3 and last 4."""
    text = str(value)
    if len(text) <= 7:
        return text[:1] + "*" * max(len(text) - 2, 1) + text[-1:]
    return text[:3] + "*" * (len(text) - 7) + text[-4:]


def tail(value: Any, count: int = 4) -> str:
    """The last ``count`` characters: bank cards and accounts are named by ``尾号1234``."""
    return str(value)[-count:]


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def cn_date(value: Any) -> str:
    """``2026-11-23`` → ``2026年11月23日``."""
    day = _as_date(value)
    return f"{day.year}年{day.month}月{day.day}日"


def month_day(value: Any) -> str:
    """``2026-11-23`` → ``11月23日``."""
    day = _as_date(value)
    return f"{day.month}月{day.day}日"


def percent(value: Any, digits: int = 0) -> str:
    """A fraction as a percentage: ``0.125`` → ``13%`` (``digits`` decimals)."""
    scaled = _decimal(value) * 100
    quantum = Decimal(1).scaleb(-digits)
    return f"{scaled.quantize(quantum, rounding=ROUND_HALF_UP):f}%"


def data_size(megabytes: Any) -> str:
    """Mobile data in MB as people read it: ``800`` → ``800MB``, ``1536`` → ``1.5GB``."""
    mb = _decimal(megabytes)
    if abs(mb) < 1024:
        return f"{mb.quantize(Decimal(1), rounding=ROUND_HALF_UP):f}MB"
    gb = (mb / 1024).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{gb.normalize():f}GB" if gb == gb.to_integral_value() else f"{gb:f}GB"


FILTERS = {
    "yuan": yuan,
    "signed_yuan": signed_yuan,
    "mask": mask,
    "tail": tail,
    "cn_date": cn_date,
    "month_day": month_day,
    "percent": percent,
    "data_size": data_size,
}
