"""CMPP_CONNECT authentication: AuthenticatorSource (SP → ISMG) and AuthenticatorISMG.

PROTOCOLS.md §3.3 and §3.4:

* AuthenticatorSource = MD5(Source_Addr ‖ 9 × 0x00 ‖ shared secret ‖ timestamp), the
  timestamp being the CONNECT's Timestamp as ten ASCII digits ``'%010d'`` (MMDDHHMMSS).
  Sources disagree on Source_Addr: gocmpp pads it to 6 octets first, SMSGate and tek-life
  hash it as given. We **send** the unpadded form by default (they agree for the usual
  6-character SP_Id); the channel option ``sp_id_padding = "nul"`` sends the padded form
  for ISMGs that refuse the other. The simulator **accepts** either.
* AuthenticatorISMG = MD5(Status ‖ AuthenticatorSource ‖ shared secret). gocmpp hashes the
  1-octet 2.0 Status, SMSGate always 4 octets; :func:`ismg_matches` accepts either, and
  the client only logs a mismatch (§3.4: verify leniently).

CMPP clocks are Beijing time (UTC+8, no daylight saving), whatever the host's zone.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8), "CST")
_NINE_ZEROS = bytes(9)


def beijing_now() -> datetime:
    return datetime.now(BEIJING)


def timestamp(when: datetime) -> int:
    """The CONNECT Timestamp: the integer whose decimal digits are MMDDHHMMSS."""
    return int(f"{when.month:02d}{when.day:02d}{when.hour:02d}{when.minute:02d}{when.second:02d}")


SP_ID_PADDINGS = ("none", "nul")


def authenticator_source(*, source_addr: str, secret: str, timestamp: int,
                         padding: str = "none") -> bytes:
    """The 16 raw octets of MD5(Source_Addr ‖ 9 × 0 ‖ secret ‖ '%010d' % timestamp);
    ``padding="nul"`` pads a Source_Addr shorter than 6 octets with NULs first."""
    if padding not in SP_ID_PADDINGS:
        raise ValueError(f"sp_id_padding {padding!r}: use one of {', '.join(SP_ID_PADDINGS)}")
    if padding == "nul":
        source_addr = source_addr.ljust(6, "\0")
    material = (
        source_addr.encode("latin-1")
        + _NINE_ZEROS
        + secret.encode("utf-8")
        + b"%010d" % timestamp
    )
    return hashlib.md5(material, usedforsecurity=False).digest()


def source_matches(
    *, authenticator: bytes, source_addr: str, secret: str, timestamp: int
) -> bool:
    """The ISMG's check: the raw or the 6-octet NUL-padded Source_Addr (gocmpp) both pass."""
    candidates = {source_addr, source_addr.ljust(6, "\0")}
    return any(
        hmac.compare_digest(
            authenticator,
            authenticator_source(source_addr=addr, secret=secret, timestamp=timestamp),
        )
        for addr in candidates
    )


def authenticator_ismg(
    *, status: int, authenticator_source: bytes, secret: str, status_octets: int = 1
) -> bytes:
    """MD5(Status ‖ AuthenticatorSource ‖ secret); Status is 1 octet in 2.0 (gocmpp)."""
    material = status.to_bytes(status_octets, "big") + authenticator_source + secret.encode("utf-8")
    return hashlib.md5(material, usedforsecurity=False).digest()


def ismg_matches(
    *, authenticator: bytes, status: int, authenticator_source: bytes, secret: str
) -> bool:
    """True when the ISMG's authenticator fits a 1-octet (gocmpp) or 4-octet (SMSGate) Status."""
    return any(
        hmac.compare_digest(
            authenticator,
            authenticator_ismg(
                status=status,
                authenticator_source=authenticator_source,
                secret=secret,
                status_octets=width,
            ),
        )
        for width in (1, 4)
    )
