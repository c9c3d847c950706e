"""Shard leases in Redis: one matcher per shard of the location streams.

``<prefix>:lease:<shard>`` holds the owner's name with a time to live. A matcher takes
every shard it means to read or none, renews well within the ttl, and stops reading once
a lease is found gone (:class:`LeaseLost`): a matcher stalled past its ttl may have been
replaced, and two readers of one shard would each see only part of a subscriber's events.
Each step is one Lua script, so the check and the change are atomic in Redis. Kept apart
from :mod:`jingxin.geofence.streams` (reading entries); imported from there as well.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jingxin.errors import InputError, JingxinError

log = logging.getLogger(__name__)

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)  # as in streams.py


class LeaseLost(JingxinError):
    """Another matcher holds (or took over) a shard this one was reading: stop reading it."""


# All or none, atomically: a shard held by another owner stops the whole acquisition.
_ACQUIRE = """
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder and holder ~= ARGV[1] then return {i, holder, redis.call('PTTL', key)} end
end
for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'PX', ARGV[2]) end
return {0}
"""
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2])
  else table.insert(lost, i) end
end
return lost
"""
_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""


class ShardLease:
    """``<prefix>:lease:<shard>`` held by ``owner`` for ``ttl_ms``: one matcher per shard.

    ``acquire`` takes every shard or none; ``renew`` (well within the ttl) keeps them and
    raises :class:`LeaseLost` if one expired or went to another owner; ``release`` gives
    back only what this owner still holds. An unreachable Redis on renew or release is
    logged and let be: nobody else can take a lease from an unreachable Redis either."""

    def __init__(self, client: Any, *, prefix: str, owner: str, ttl_ms: int,
                 shards: list[int] | None = None) -> None:  # fmt: skip
        if ttl_ms <= 0:
            raise InputError(f"ttl_ms: {ttl_ms} must be positive")
        self.client, self.prefix, self.owner, self.ttl_ms = client, prefix, owner, int(ttl_ms)
        self.shards: list[int] = sorted(set(shards or []))
        self.held: list[int] = []
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def key(self, shard: int) -> str:
        return f"{self.prefix}:lease:{shard}"

    def acquire(self, shards: list[int] | None = None) -> list[int]:
        wanted = sorted(set(shards)) if shards is not None else self.shards
        if not wanted:
            raise InputError("lease: no shards to acquire")
        got = self._acquire(keys=[self.key(k) for k in wanted], args=[self.owner, self.ttl_ms])
        if int(got[0]):
            shard, holder, pttl = wanted[int(got[0]) - 1], _text(got[1]), int(got[2])
            left = f"for another {pttl / 1000:.0f} s" if pttl > 0 else "without expiry"
            raise InputError(f"shard {shard}: leased by {holder!r} ({self.key(shard)}, "
                             f"{left}); stop that matcher or read other shards")  # fmt: skip
        self.shards = self.held = wanted
        return wanted

    def renew(self) -> None:
        if not self.held:
            return
        try:
            lost = self._renew(keys=[self.key(k) for k in self.held],
                               args=[self.owner, self.ttl_ms])  # fmt: skip
        except _UNREACHABLE as exc:
            log.warning("renewing the lease on shards %s failed (%s)", self.held, exc)
            return
        if lost:
            gone = [self.held[int(i) - 1] for i in lost]
            raise LeaseLost(f"lease lost on shards {gone} (expired or taken by another "
                            f"matcher); {self.owner!r} must stop reading them")  # fmt: skip

    def release(self) -> None:
        if not self.held:
            return
        try:
            self._release(keys=[self.key(k) for k in self.held], args=[self.owner])
        except _UNREACHABLE as exc:
            log.warning("releasing the lease on shards %s failed (%s); it expires in %d ms",
                        self.held, exc, self.ttl_ms)  # fmt: skip
        self.held = []


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
