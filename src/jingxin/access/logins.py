"""Console log-in: the password check, a throttle on repeated failures, the new session,
and the audit log's record of both - one function (:func:`log_in`) for the API's
``POST /auth/login`` and the console's form.

An unknown name, a wrong password and a disabled account are refused with the same words
(:class:`LoginRefused`), in about the same time (an unknown name still verifies a dummy
hash). After :attr:`LoginThrottle.failures` failures for one username within
:attr:`LoginThrottle.window_seconds`, further attempts are refused without checking the
password (:class:`TooManyLogins`, saying when to try again) until the oldest failure ages
out; a success clears the count. The throttle lives in the serving process: with several
processes, each counts its own (an attacker gets ``failures`` tries per process per window).
Failures against an existing account are written to the audit log of its tenant (the
name typed is never recorded for unknown accounts: people type passwords there).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from jingxin.access.sessions import open_session
from jingxin.access.users import authenticate, get_user
from jingxin.data.store import Store
from jingxin.errors import InputError

WRONG = "wrong username or password"


class LoginRefused(InputError):
    """Wrong username or password (or a disabled account: the same words)."""

    def __init__(self) -> None:
        super().__init__(WRONG)


class TooManyLogins(InputError):
    """Too many failed log-ins for this username lately: try again after ``retry_after``."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed log-ins for this username; try again in "
                         f"{math.ceil(retry_after)} s")  # fmt: skip


class LoginThrottle:
    """Failed log-ins per username in a sliding window, in this process (thread-safe)."""

    def __init__(self, *, failures: int = 5, window_seconds: float = 300.0,
                 max_names: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.window_seconds = window_seconds
        self.max_names = max_names  # memory bound against made-up names
        self.clock = clock
        self._failed: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, username: str) -> float:
        """Seconds before ``username`` may try again; 0: now."""
        now = self.clock()
        with self._lock:
            times = self._recent(username, now)
            if times is None or len(times) < self.failures:
                return 0.0
            return max(0.001, times[0] + self.window_seconds - now)

    def failed(self, username: str) -> None:
        now = self.clock()
        with self._lock:
            times = self._recent(username, now)
            if times is None:
                if len(self._failed) >= self.max_names:
                    self._prune(now)
                times = self._failed[username] = deque(maxlen=self.failures)
            times.append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failed.pop(username, None)

    def _recent(self, username: str, now: float) -> deque[float] | None:
        times = self._failed.get(username)
        if times is None:
            return None
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        if not times:
            del self._failed[username]
            return None
        return times

    def _prune(self, now: float) -> None:
        for name in list(self._failed):
            self._recent(name, now)
        while len(self._failed) >= self.max_names:  # still full: forget the oldest names
            del self._failed[next(iter(self._failed))]


@dataclass(frozen=True, slots=True)
class Login:
    """A successful log-in: the session cookie's token and CSRF token, and who it is."""

    token: str
    csrf_token: str
    user_id: int
    username: str
    display_name: str
    role: str
    tenant_id: str


def log_in(store: Store, *, username: str, password: str, minutes: int,
           throttle: LoginThrottle, now: datetime | None = None) -> Login:
    """Check the password, open a session of ``minutes`` and record it in the audit log;
    or raise :class:`LoginRefused` (the failure recorded too) or :class:`TooManyLogins`."""
    from jingxin.data.store.audit import record_action

    name = username.strip().lower()
    wait = throttle.wait(name)
    if wait > 0:
        raise TooManyLogins(wait)
    login = None
    with store.transaction() as session:
        user = authenticate(session, username=name, password=password, now=now)
        if user is not None:
            token, row = open_session(session, user=user, minutes=minutes, now=now)
            record_action(session, actor=f"user:{user.username}", action="login",
                          object_type="user", object_id=user.id, tenant_id=user.tenant_id,
                          detail={"session_minutes": minutes})  # fmt: skip
            login = Login(token=token, csrf_token=row.csrf_token, user_id=user.id,
                          username=user.username, display_name=user.display_name,
                          role=user.role, tenant_id=user.tenant_id)  # fmt: skip
        elif (known := get_user(session, username=name)) is not None:
            reason = "disabled" if known.disabled else "wrong password"
            record_action(session, actor=f"user:{known.username}", action="login_failed",
                          object_type="user", object_id=known.id, tenant_id=known.tenant_id,
                          detail={"reason": reason})  # fmt: skip
    if login is None:
        throttle.failed(name)
        raise LoginRefused()
    throttle.succeeded(name)
    return login
