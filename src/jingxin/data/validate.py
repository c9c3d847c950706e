"""The one check of each value a user, a file or a peer may hand us about a subscriber.

Every entry (CLI commands, store functions, settings, later the API and the MO handlers)
calls these, so the same string gives the same answer everywhere: a phone number becomes
the same E.164 text or the same refusal, a category or source outside its list, a
malformed tenant id, or a country that is not ISO 3166-1 alpha-2 is refused with one
:class:`~jingxin.errors.InputError` naming the field.

Each function returns the canonical value (``+8613800138000``, ``US``, ``marketing``) and
is pure: whether a tenant *exists* needs the store (see
:func:`jingxin.data.store.contact.require_tenant`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection

from jingxin.data.msisdn import InvalidMsisdn, normalise_msisdn
from jingxin.errors import InputError

MESSAGE_CATEGORIES = ("otp", "notification", "marketing")
# An OTP is asked for in the moment: nobody consents to it or opts out of it.
CONSENT_CATEGORIES = ("marketing", "notification")
OPT_OUT_CATEGORIES = CONSENT_CATEGORIES
OPT_OUT_SOURCES = ("sms_reply", "hotline", "api", "console", "import")

_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def valid_msisdn(raw: object, *, field: str = "msisdn") -> str:
    """The E.164 form of a CN mobile number (``13800138000`` → ``+8613800138000``).

    Raises :class:`~jingxin.data.msisdn.InvalidMsisdn` (an InputError) naming the field and
    the reason (``not a number``, ``too short``, ``foreign``, ...)."""
    text = "" if raw is None else str(raw)
    try:
        return normalise_msisdn(text).e164
    except InvalidMsisdn as exc:
        error = InvalidMsisdn(text, exc.reason)
        error.args = (f"{field}: {exc}",)
        raise error from None


def valid_choice(value: object, *, allowed: Collection[str], field: str) -> str:
    """``value`` if it is one of ``allowed`` (exact, lower case), else an InputError."""
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"{field}: {value!r} is not one of {', '.join(allowed)}")
    return value


def valid_category(value: object, *, field: str = "category",
                   allowed: Collection[str] = MESSAGE_CATEGORIES) -> str:
    """A message category (``otp``, ``notification``, ``marketing``) or a narrower list."""
    return valid_choice(value, allowed=allowed, field=field)


def valid_source(value: object, *, field: str = "source",
                 allowed: Collection[str] | None = None) -> str:
    """What started a candidate (campaign, journey, fence, hall, api, probe, inbox): by default
    the values of :class:`jingxin.domain.candidate.Source`, the list policy knows."""
    if allowed is None:
        from jingxin.domain.candidate import Source

        allowed = tuple(s.value for s in Source)
    return valid_choice(value, allowed=allowed, field=field)


def valid_tenant_id(value: object, *, field: str = "tenant") -> str:
    """A well-formed tenant id: letters, digits and ``_.:-``, at most 64 characters."""
    if not isinstance(value, str) or not _TENANT_ID.match(value):
        raise InputError(
            f"{field}: {value!r} is not a tenant id (letters, digits, '_', '.', ':' or '-', "
            "at most 64 characters)"
        )
    return value


def valid_country(value: object, *, field: str = "country") -> str:
    """An ISO 3166-1 alpha-2 country code, upper case (``us`` → ``US``)."""
    code = value.strip().upper() if isinstance(value, str) else ""
    if code not in iso_countries():
        raise InputError(f"{field}: {value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def valid_timezone(value: object, *, field: str = "timezone") -> str:
    """An IANA time zone name that this machine's zone database knows."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{field}: {value!r} is not an IANA time zone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"{field}: {value!r} is not an IANA time zone "
                         "(e.g. Asia/Shanghai)") from None
    return value


@functools.cache
def iso_countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes, from tzdata's iso3166.tab (the system's, else
    phonenumbers' region list, which is the same set bar Antarctica-like territories)."""
    import importlib.resources

    text = ""
    try:
        text = importlib.resources.files("tzdata").joinpath("zoneinfo", "iso3166.tab").read_text()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        try:
            with open("/usr/share/zoneinfo/iso3166.tab", encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            pass
    codes = {line.split("\t", 1)[0].strip().upper() for line in text.splitlines()
             if line.strip() and not line.startswith("#")}  # fmt: skip
    if not codes:
        import phonenumbers

        codes = set(phonenumbers.SUPPORTED_REGIONS)
    return frozenset(c for c in codes if len(c) == 2 and c.isalpha())
