"""command_status names and retry classes; the token bucket."""

from __future__ import annotations

import pytest

from jingxin.channels.smpp import status as st
from jingxin.channels.throttle import TokenBucket


@pytest.mark.parametrize(
    ("code", "text", "klass"),
    [(0x0B, "ESME_RINVDSTADR (0x0000000B)", st.RetryClass.PERMANENT),
     (0x58, "ESME_RTHROTTLED (0x00000058)", st.RetryClass.THROTTLED),
     (0x14, "ESME_RMSGQFUL (0x00000014)", st.RetryClass.THROTTLED),
     (0x08, "ESME_RSYSERR (0x00000008)", st.RetryClass.TEMPORARY),
     (0x50, "ESME_RINVDSTTON (0x00000050)", st.RetryClass.PERMANENT),
     (0x401, "VENDOR_0x00000401 (0x00000401)", st.RetryClass.PERMANENT)],
)  # fmt: skip
def test_describe_and_classify(code: int, text: str, klass: st.RetryClass) -> None:
    assert st.describe(code) == text
    assert st.retry_class(code) is klass


def test_vendor_codes_can_be_reclassified_and_parsed() -> None:
    assert st.retry_class(0x401, overrides={0x401: st.RetryClass.TEMPORARY}) is st.RetryClass.TEMPORARY
    assert [st.parse(t) for t in ("ESME_RTHROTTLED", "0x58", "88")] == [0x58] * 3
    with pytest.raises(ValueError, match="ESME_NOPE"):
        st.parse("ESME_NOPE")


def test_token_bucket_paces_to_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(10.0, burst=2, clock=lambda: now[0])
    # Given a full burst of 2, Then two takes are free and the third waits 1/10 s
    assert [bucket.delay(), bucket.delay()] == [0.0, 0.0]
    assert bucket.delay() == pytest.approx(0.1)
    assert not bucket.try_take()
    now[0] = 0.3  # refills 3 tokens, capped at the burst
    assert bucket.try_take() and bucket.try_take()
    assert TokenBucket(0).delay() == 0.0 and TokenBucket(0).try_take()
