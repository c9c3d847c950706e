"""The hold-out share of a sender (a fence, a journey): as its file writes it, and by default.

Fences and journeys hold out a share of the subscribers they would message, so what the
messages did can be measured against subscribers who got none (experiments
``fence:<code>``, ``journey:<name>``; the split itself is :mod:`jingxin.analytics.assign`).

* :func:`parse_share` reads ``holdout:`` as staff write it: ``0.05``, ``5%``, ``none`` or
  ``off`` (no hold-out), or unset (None: the default). More than half is refused - a
  hold-out larger than the treated group measures little and costs much - and so is 100%,
  which would send nothing.
* :func:`share_for`: an explicit share always wins; otherwise ``[analytics] holdout`` for
  a sender whose category is ``marketing`` and none for ``notification`` and ``otp``: a
  service notice (a usage alert, a roaming tariff) is information the subscriber needs,
  and withholding it to measure it is not the operator's to choose. A birthday or festival
  greeting goes out as marketing, so it is measured like any offer.
* :func:`default_share` checks the setting once, where a sender starts.
"""

from __future__ import annotations

from typing import Any

from jingxin.errors import ConfigError

__all__ = ["MAX_HOLDOUT", "default_share", "parse_share", "share_for"]

MAX_HOLDOUT = 0.5
_NONE = ("none", "off", "no")


def parse_share(value: Any) -> float | None:
    """``holdout:`` as written, as a share in [0, 0.5]; None when unset. A ValueError
    says what is wrong (the caller names the file, line and field)."""
    if value is None:
        return None
    if value is False or (isinstance(value, str) and value.strip().lower() in _NONE):
        return 0.0
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        share = None
    if share is None or isinstance(value, bool):  # yes/true is no share
        raise ValueError(f"{value!r} is no share (write 0.05, 5% or none)")
    if not 0.0 <= share <= MAX_HOLDOUT:
        raise ValueError(f"{text} is no hold-out share: give 0 to {MAX_HOLDOUT:g} (50%), or none"
                         + (" - a hold-out of 100% would send nothing" if share >= 1 else ""))
    return share


def share_for(explicit: float | None, *, category: str, default: float) -> float:
    """The share a sender holds out: ``explicit`` if given, else ``default`` (``[analytics]
    holdout``) for marketing and 0 for the other categories (module docstring)."""
    if explicit is not None:
        return explicit
    return default if category == "marketing" else 0.0


def default_share(settings: Any) -> float:
    """``[analytics] holdout`` of ``settings``, refused above half (ConfigError naming it)."""
    share = float(settings.analytics.holdout)
    if share > MAX_HOLDOUT:
        raise ConfigError(f"analytics.holdout: {share:g} would hold out more than half of what "
                          f"fences and journeys send; give 0 to {MAX_HOLDOUT:g}")  # fmt: skip
    return share
