"""Short links in messages: the token of a message, its short URL, and the target check.

A message that carries a link carries ``https://<link_domain>/<token>`` instead of the
target itself; ``jingxin serve`` redirects the token to the target (``messages.link_url``)
and records the click. The token is an HMAC-SHA256 of the message's idempotency key under
``[analytics] link_secret``, written in base62:

- a retry of the same key gets the same token (nothing about a retry is random);
- nothing about the subscriber is in the URL (the key may hold the number; the HMAC does
  not give it back, and without the secret nobody can compute a token from a number);
- tokens cannot be guessed or enumerated (see :data:`TOKEN_LENGTH`).

Two keys whose tokens collide are refused by the unique index on ``messages.link_token``;
the delivery entry then derives the next token of the key (``attempt``), so a collision
costs a retry, never a message.

:func:`token_for` is the single form (one message), :func:`token_array` /
:func:`tokens_for` the vectorised one (a campaign chunk: no Python big-integer work per
row); a unit test holds them to the same answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingxin.errors import InputError

__all__ = ["ALPHABET", "TOKEN_LENGTH", "check_target", "short_url", "token_array",
           "token_for", "tokens_for"]  # fmt: skip

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 10 base62 characters: 62**10 ~ 8.4e17 ~ 2**59.5 tokens. By the birthday bound the chance
# that any two of n tokens collide is about n**2 / (2 * 62**10): ~6e-5 for ten million,
# ~1.5e-3 for fifty million, so over tens of millions of messages a collision is rare,
# and when one happens the unique index refuses it and the next derivation is taken (a
# retry, not a lost message). Guessing is hopeless: with a hundred million live tokens a
# random guess hits one with probability ~1.2e-10. Each character of the URL costs room in
# the message (70 per part in UCS-2), so no longer than this: https://jx.cn/ + 10 = 24.
TOKEN_LENGTH = 10
MAX_TARGET_LENGTH = 2048  # what browsers and SMS landing pages reliably take

_DIGITS = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)
_BLOCK = 64  # SHA-256's block size, for the HMAC pads


def token_for(key: str, secret: str, *, attempt: int = 0) -> str:
    """The short-link token of the message with idempotency key ``key``: HMAC-SHA256 of
    the key (and, after ``attempt`` collisions, the attempt) under ``secret``, its first
    8 bytes (big-endian) written as :data:`TOKEN_LENGTH` base62 digits."""
    value = int.from_bytes(_digest(_pads(secret), _message(key, attempt))[:8], "big")
    digits = []
    for _ in range(TOKEN_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def token_array(keys: Sequence[str] | pa.Array | pa.ChunkedArray, secret: str, *,
                attempt: int = 0) -> pa.StringArray:  # fmt: skip
    """:func:`token_for` of every key, as an Arrow string array (null where the key is
    null): one HMAC per key, then the base62 digits of all of them at once in NumPy."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    array = keys if isinstance(keys, pa.Array) else pa.array(list(keys), pa.string())
    n = len(array)
    inner, outer = _pads(secret)
    heads = bytearray()
    for key in array.fill_null("").to_pylist():  # the one loop per row: two hash copies
        mine = inner.copy()
        mine.update(_message(key, attempt))
        theirs = outer.copy()
        theirs.update(mine.digest())
        heads += theirs.digest()[:8]
    value = np.frombuffer(bytes(heads), dtype=">u8").astype(np.uint64)
    digits = np.empty((n, TOKEN_LENGTH), dtype=np.uint8)
    for place in range(TOKEN_LENGTH - 1, -1, -1):
        digits[:, place] = value % 62
        value //= 62
    data = _DIGITS[digits].tobytes()
    offsets = np.arange(0, TOKEN_LENGTH * (n + 1), TOKEN_LENGTH, dtype=np.int32)
    tokens = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                    pa.py_buffer(data)])  # fmt: skip
    if array.null_count:
        tokens = pc.if_else(pc.is_null(array), pa.scalar(None, pa.string()), tokens)
    return tokens


def tokens_for(keys: Sequence[str] | pa.Array | pa.ChunkedArray, secret: str, *,
               attempt: int = 0) -> list[str]:  # fmt: skip
    """:func:`token_for` of every key (the vectorised form, :func:`token_array`)."""
    return token_array(keys, secret, attempt=attempt).to_pylist()


def short_url(domain: str, token: str) -> str:
    """The URL a message carries: ``https://<domain>/<token>``."""
    return f"https://{domain}/{token}"


def check_target(url: str, *, where: str) -> str:
    """``url`` (surrounding whitespace dropped) if it can be a link's target: an http or
    https URL with a host, without spaces or control characters, at most
    :data:`MAX_TARGET_LENGTH` characters; else an InputError starting with ``where`` (the
    field it came from)."""
    text = url.strip() if isinstance(url, str) else ""
    if not text:
        raise InputError(f"{where}: the link's target is empty (give an http(s) URL)")
    shown = text if len(text) <= 80 else text[:77] + "..."
    if len(text) > MAX_TARGET_LENGTH:
        raise InputError(f"{where}: {shown!r} is {len(text)} characters long "
                         f"(at most {MAX_TARGET_LENGTH})")  # fmt: skip
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(f"{where}: {shown!r} has a space or a control character "
                         "(percent-encode it: %20)")  # fmt: skip
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        raise InputError(f"{where}: {shown!r} is not a URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(f"{where}: {shown!r} is not an http or https URL")
    if not parts.hostname:
        raise InputError(f"{where}: {shown!r} has no host")
    return text


def _pads(secret: str) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer hashes with the key's pads absorbed (RFC 2104), so a
    token costs two hash copies and two short updates instead of a new HMAC object."""
    key = secret.encode("utf-8")
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _digest(pads: tuple[Any, Any], message: bytes) -> bytes:
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(message)
    outer.update(inner.digest())
    return outer.digest()


def _message(key: str, attempt: int) -> bytes:
    """The bytes the token is an HMAC of: the key; after a collision, a NUL, the attempt
    and the key (a stored key never holds a NUL: PostgreSQL's text refuses it)."""
    data = key.encode("utf-8")
    return data if attempt == 0 else b"\0" + str(attempt).encode("ascii") + b"\0" + data
