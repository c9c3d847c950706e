"""Which channel a message leaves by: rules by number range or carrier, health, fail-over.

Rules are tried in order; the first whose prefixes or carriers match the number wins
(a rule with neither matches everything). A message that already names its channel keeps
it. A channel is *healthy* while it is bound and its recent error rate is under the limit;
an unhealthy channel's traffic goes to the rule's ``backup`` when that one is healthy (a
bound channel with no healthy alternative keeps its traffic). An unhealthy channel gets a
fresh window after ``cooldown`` seconds, so it is tried again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from jingxin.data.msisdn import carrier_of
from jingxin.errors import ConfigError, Retry


@dataclass(frozen=True, slots=True)
class RouteRule:
    channel: str
    prefixes: tuple[str, ...] = ()
    carriers: tuple[str, ...] = ()
    backup: str | None = None

    def matches(self, msisdn: str, carrier: str) -> bool:
        if not self.prefixes and not self.carriers:
            return True
        return carrier in self.carriers or msisdn.startswith(self.prefixes)


@dataclass
class Health:
    """Recent results of one channel: errors among its last 50 submits."""

    limit: float = 0.5
    cooldown: float = 10.0
    results: deque[bool] = field(default_factory=lambda: deque(maxlen=50))
    unhealthy_since: float | None = None

    def record(self, ok: bool) -> None:
        self.results.append(ok)

    @property
    def error_rate(self) -> float:
        if not self.results:
            return 0.0
        return self.results.count(False) / len(self.results)

    def healthy(self, bound: bool, now: float) -> bool:
        sick = not bound or (len(self.results) >= 10 and self.error_rate > self.limit)
        if not sick:
            self.unhealthy_since = None
            return True
        if self.unhealthy_since is None:
            self.unhealthy_since = now
        elif bound and now - self.unhealthy_since >= self.cooldown:
            self.results.clear()  # half-open: give it another chance
            self.unhealthy_since = None
            return True
        return False


class Router:
    """Chooses a channel per message; ``record`` feeds submit outcomes back into health."""

    def __init__(
        self, *, rules: Sequence[RouteRule], channels: Sequence[str],
        bound: Callable[[str], bool] = lambda _name: True, error_limit: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        if not channels:
            raise ConfigError("dispatch needs at least one channel in [[channels]]")
        known = set(channels)
        for i, rule in enumerate(rules):
            for name in (rule.channel, rule.backup):
                if name is not None and name not in known:
                    raise ConfigError(
                        f"dispatch.routes[{i}]: unknown channel {name!r} "
                        f"(known: {', '.join(sorted(known))})"
                    )
        self.rules = tuple(rules) or (RouteRule(channel=channels[0]),)
        self.channels = tuple(channels)
        self.bound = bound
        self.clock = clock
        self.health = {name: Health(limit=error_limit) for name in channels}

    def route(self, msisdn: str, *, preferred: str | None = None) -> str:
        """The channel for ``msisdn``; :class:`Retry` when neither it nor its backup works."""
        if preferred is not None and preferred in self.health:
            primary, backup = preferred, None
        else:
            rule = self._rule(msisdn)
            primary, backup = rule.channel, rule.backup
        now = self.clock()
        if self.healthy(primary, now):
            return primary
        if backup is not None and self.healthy(backup, now):
            return backup
        if self.bound(primary):
            return primary  # failing, but bound and nothing better: keep trying rather than stall
        raise Retry(f"channel {primary} is down" + (f" and so is {backup}" if backup else ""),
                    delay=1.0)  # fmt: skip

    def healthy(self, name: str, now: float | None = None) -> bool:
        return self.health[name].healthy(
            self.bound(name), self.clock() if now is None else now
        )

    def record(self, name: str, *, ok: bool) -> None:
        self.health[name].record(ok)

    def _rule(self, msisdn: str) -> RouteRule:
        carrier = carrier_of(msisdn)
        for rule in self.rules:
            if rule.matches(msisdn, carrier):
                return rule
        return RouteRule(channel=self.channels[0])


def rules_from(settings: Sequence[object]) -> list[RouteRule]:
    """RouteRules from ``dispatch.routes`` settings."""
    return [
        RouteRule(s.channel, tuple(s.prefixes), tuple(s.carriers), s.backup)  # type: ignore[attr-defined]
        for s in settings
    ]


def bound_probe(channels: Mapping[str, object]) -> Callable[[str], bool]:
    """A bind-state probe over channels: ``bound`` or ``session.bound`` when they have one."""

    def bound(name: str) -> bool:
        channel = channels.get(name)
        if channel is None:
            return False
        flag = getattr(channel, "bound", None)
        if isinstance(flag, bool):
            return flag
        if hasattr(channel, "session"):
            session = channel.session
            return session is not None and bool(getattr(session, "bound", False))
        return True

    return bound
