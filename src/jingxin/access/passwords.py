"""Password hashes: argon2id through argon2-cffi (the library's defaults, RFC 9106)."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from jingxin.errors import InputError

MIN_LENGTH = 10


_HASHER: list[PasswordHasher] = []


def _hasher() -> PasswordHasher:
    if not _HASHER:
        _HASHER.append(PasswordHasher())  # argon2id, RFC 9106's low-memory profile
    return _HASHER[0]


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash with ``hasher`` from now on (tests use cheap parameters; stored hashes carry
    their own, so every hash still verifies)."""
    _HASHER[:] = [hasher]
    _dummy.cache_clear()


@lru_cache(maxsize=1)
def _dummy() -> str:
    return _hasher().hash("jingxin-no-such-user")


def check_password(password: str, *, field: str = "password") -> str:
    """``password`` if it is long enough, else an InputError naming the field."""
    if len(password) < MIN_LENGTH:
        raise InputError(f"{field}: at least {MIN_LENGTH} characters, please")
    return password


def hash_password(password: str) -> str:
    return _hasher().hash(check_password(password))


def verify_password(stored: str | None, password: str) -> bool:
    """Does ``password`` match ``stored``? With ``stored`` None (no such user) a dummy
    hash is checked all the same, so the answer takes as long either way."""
    try:
        return _hasher().verify(stored or _dummy(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher().check_needs_rehash(stored)
