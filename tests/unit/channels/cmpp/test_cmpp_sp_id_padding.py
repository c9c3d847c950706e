"""CONNECT AuthenticatorSource with a short SP_Id, hashed as given ("none", the default) or
NUL-padded to 6 octets ("nul"), each checked against an MD5 computed here by hand from
the CMPP 2.0 rule: MD5(Source_Addr + 9 zero octets + shared secret + "MMDDHHMMSS")."""

from __future__ import annotations

import hashlib

import pytest

from jingxin.channels.cmpp import auth
from jingxin.channels.cmpp.client import from_settings
from jingxin.config import ChannelSettings

STAMP = 1206093005  # 12-06 09:30:05 → "1206093005"


def _by_hand(source: bytes) -> bytes:
    return hashlib.md5(source + b"\x00" * 9 + b"s3cret" + b"1206093005").digest()


def test_a_short_sp_id_is_hashed_as_given_by_default():
    got = auth.authenticator_source(source_addr="90100", secret="s3cret", timestamp=STAMP)
    assert got == _by_hand(b"90100")


def test_nul_padding_pads_a_short_sp_id_to_six_octets():
    got = auth.authenticator_source(source_addr="90100", secret="s3cret", timestamp=STAMP,
                                    padding="nul")
    assert got == _by_hand(b"90100\x00")
    assert got != _by_hand(b"90100")


def test_a_six_octet_sp_id_is_the_same_either_way():
    plain = auth.authenticator_source(source_addr="901001", secret="s3cret", timestamp=STAMP)
    padded = auth.authenticator_source(source_addr="901001", secret="s3cret", timestamp=STAMP,
                                       padding="nul")
    assert plain == padded == _by_hand(b"901001")


def test_the_timestamp_keeps_its_leading_zero():
    got = auth.authenticator_source(source_addr="901001", secret="k", timestamp=105000000)
    assert got == hashlib.md5(b"901001" + bytes(9) + b"k" + b"0105000000").digest()


@pytest.mark.parametrize("padding", ["none", "nul"])
def test_the_simulator_accepts_either_form(padding):
    sent = auth.authenticator_source(source_addr="90100", secret="s3cret", timestamp=STAMP,
                                     padding=padding)
    assert auth.source_matches(authenticator=sent, source_addr="90100", secret="s3cret",
                               timestamp=STAMP)
    assert not auth.source_matches(authenticator=sent, source_addr="90100", secret="other",
                                   timestamp=STAMP)


def test_the_channel_option_reaches_the_client_and_bad_values_are_refused():
    settings = ChannelSettings(name="ismg", protocol="cmpp", system_id="90100",
                               sp_id_padding="nul")
    assert from_settings(settings).options.sp_id_padding == "nul"
    assert from_settings(ChannelSettings(name="x", protocol="cmpp", system_id="90100")
                         ).options.sp_id_padding == "none"
    with pytest.raises(ValueError, match="sp_id_padding"):
        ChannelSettings(name="x", protocol="cmpp", sp_id_padding="zero")
    with pytest.raises(ValueError, match="sp_id_padding 'zero'"):
        auth.authenticator_source(source_addr="1", secret="", timestamp=0, padding="zero")
