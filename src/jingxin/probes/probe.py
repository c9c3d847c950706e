"""A dial test as the runner uses it: the ``[[probes]]`` settings, checked and compiled once.

The settings keep ``expect`` as text; a pattern that does not compile, or two probes with
one name (their history would mix), stop the command with a :class:`ConfigError` that
names the entry (``probes[2].expect``) before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jingxin.config import ProbeSettings
from jingxin.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Probe:
    """One MO to send as the test SIM would, and what must come back, how fast."""

    name: str
    msisdn: str
    service_number: str
    text: str
    expect: re.Pattern[str]
    max_latency_ms: int


def load_probes(entries: Sequence[ProbeSettings], *, names: Iterable[str] | None = None) -> list[Probe]:
    """The configured probes (all, or those ``names`` asks for, in settings order).

    Raises ConfigError for a pattern that does not compile or a repeated name, and for a
    wanted name that is not configured (the message lists the ones that are)."""
    probes: list[Probe] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.name in seen:
            raise ConfigError(f"invalid setting probes[{index}].name: {entry.name!r} is already "
                              f"the name of probes[{seen[entry.name]}]")  # fmt: skip
        seen[entry.name] = index
        try:
            pattern = re.compile(entry.expect)
        except re.error as exc:
            raise ConfigError(f"invalid setting probes[{index}].expect: /{entry.expect}/ is not "
                              f"a regular expression ({exc})") from None  # fmt: skip
        probes.append(Probe(entry.name, entry.msisdn, entry.service_number, entry.text, pattern,
                            entry.max_latency_ms))  # fmt: skip
    if names is None:
        return probes
    wanted = list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in seen]
    if unknown:
        known = ", ".join(seen) or "none: add [[probes]] to the settings"
        raise ConfigError(f"no probe named {', '.join(map(repr, unknown))} (configured: {known})")
    return [probe for probe in probes if probe.name in wanted]
