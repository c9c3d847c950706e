"""Short-link tokens: deterministic per idempotency key, fixed length, base62, unguessable
without the secret; the vectorised form agrees with the single one; targets are checked."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest

from jingxin.analytics.links import (
    ALPHABET,
    TOKEN_LENGTH,
    check_target,
    short_url,
    token_array,
    token_for,
    tokens_for,
)
from jingxin.errors import InputError

SECRET = "test-secret"


def _reference(key: str, secret: str) -> str:
    """The token as the module's docstring defines it, with the standard library's HMAC."""
    value = int.from_bytes(hmac.new(secret.encode(), key.encode(), hashlib.sha256).digest()[:8])
    digits = ""
    for _ in range(TOKEN_LENGTH):
        value, digit = divmod(value, 62)
        digits = ALPHABET[digit] + digits
    return digits


def test_a_key_always_gets_the_same_token_of_ten_base62_characters() -> None:
    # Given one idempotency key, When its token is made twice
    first, again = token_for("campaign:12:+8613800000001", SECRET), token_for(
        "campaign:12:+8613800000001", SECRET)  # fmt: skip
    # Then it is the same, 10 characters of the base62 alphabet, the HMAC-SHA256 of the key
    assert first == again == _reference("campaign:12:+8613800000001", SECRET)
    assert len(first) == TOKEN_LENGTH == 10
    assert set(first) <= set(ALPHABET) and len(ALPHABET) == 62


def test_different_keys_secrets_and_attempts_give_different_tokens() -> None:
    keys = [f"campaign:1:+86138{i:08d}" for i in range(2000)]
    tokens = tokens_for(keys, SECRET)
    assert len(set(tokens)) == len(keys)
    assert token_for(keys[0], "another-secret") != tokens[0]
    # After a collision the next attempt gives another token, itself deterministic
    retry = token_for(keys[0], SECRET, attempt=1)
    assert retry != tokens[0] and retry == token_for(keys[0], SECRET, attempt=1)
    # The number is not in the token (nothing about the subscriber is in the URL)
    assert all("13800000" not in t for t in tokens)


@pytest.mark.parametrize("attempt", [0, 2])
def test_the_vectorised_form_agrees_with_the_single_one(attempt: int) -> None:
    # Given keys of every shape, long and non-ASCII ones too, and a secret longer than a block
    keys = ["", "k", "华为:订单:1", "x" * 500] + [f"journey:welcome:{i}" for i in range(300)]
    secret = "s" * 100
    # Then the list, the Arrow array and the single form say the same
    single = [token_for(k, secret, attempt=attempt) for k in keys]
    assert tokens_for(keys, secret, attempt=attempt) == single
    assert token_array(pa.chunked_array([keys[:3], keys[3:]]), secret,
                       attempt=attempt).to_pylist() == single  # fmt: skip
    # And a null key has a null token
    assert token_array(pa.array(["a", None]), secret).to_pylist() == [token_for("a", secret), None]
    assert tokens_for([], secret) == []


def test_a_short_url_has_a_fixed_length() -> None:
    urls = {short_url("jx.cn", t) for t in tokens_for(["a", "b", "c"], SECRET)}
    assert {len(u) for u in urls} == {len("https://jx.cn/") + TOKEN_LENGTH}
    assert short_url("jx.cn", "abc") == "https://jx.cn/abc"


@pytest.mark.parametrize("url", [
    "https://shop.example.com/offer?id=1&utm=sms", "http://jx.cn", "HTTPS://A.cn:8443/x#top",
    "  https://jx.cn/p  ",
])  # fmt: skip
def test_http_and_https_urls_with_a_host_are_targets(url: str) -> None:
    assert check_target(url, where="link") == url.strip()


@pytest.mark.parametrize(("url", "why"), [
    ("", "empty"), ("   ", "empty"), (None, "empty"),
    ("ftp://jx.cn/file", "not an http or https URL"), ("jx.cn/offer", "not an http or https"),
    ("javascript:alert(1)", "not an http or https"), ("https:///path", "no host"),
    ("https://jx.cn/a b", "space"), ("https://jx.cn/a\tb", "space"),
    ("https://jx.cn/\x00", "control character"), ("https://jx.cn:port/", "not a URL"),
    ("https://jx.cn/" + "a" * 2100, "characters long"),
])  # fmt: skip
def test_anything_else_is_an_input_error_naming_the_field(url, why: str) -> None:
    with pytest.raises(InputError, match=rf"^campaign spec: link: .*{why}"):
        check_target(url, where="campaign spec: link")
