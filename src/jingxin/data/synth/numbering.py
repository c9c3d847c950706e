"""Mobile numbers: real Chinese number segments per carrier, unique per subscriber.

The carrier is drawn by market share (2024 subscriber counts: China Mobile about 56%,
Telecom 24%, Unicom 19%, Broadnet 1%; the base mixes carriers as number portability
does), then a three-digit segment within the carrier. The eight digits after the segment
are a bijection of the subscriber's global index (an affine map and a half swap in base
10^4, keyed by the seed), so no two subscribers ever share a number, whatever chunk they
were generated in, for up to 10^8 subscribers.
"""

from __future__ import annotations

import numpy as np

from jingxin.data.synth.columns import digit_strings

SEGMENTS: dict[str, tuple[int, ...]] = {
    "china_mobile": (134, 135, 136, 137, 138, 139, 147, 150, 151, 152, 157, 158, 159, 172,
                     178, 182, 183, 184, 187, 188, 195, 197, 198),
    "china_unicom": (130, 131, 132, 145, 155, 156, 166, 175, 176, 185, 186, 196),
    "china_telecom": (133, 149, 153, 173, 177, 180, 181, 189, 190, 191, 193, 199),
    "china_broadnet": (192,),
}
CARRIER_SHARE = {"china_mobile": 0.56, "china_telecom": 0.24, "china_unicom": 0.19,
                 "china_broadnet": 0.01}
# Older segments hold more numbers than recently opened ones; data-card (14x) segments few.
# 149 is a Telecom data-card (IoT) segment: libphonenumber, and so the importer, does not
# accept it as a mobile number that can take SMS, so no subscriber is given one.
_WEIGHT = {**{s: 1.0 for c in SEGMENTS.values() for s in c},
           145: 0.15, 147: 0.3, 149: 0.0, 172: 0.3, 192: 1.0}
# Newer segments sold with cheap acquisition promotions: their holders switch more often.
COMPETITOR_PRONE = frozenset({166, 172, 173, 175, 176, 177, 178, 190, 191, 192, 193, 195,
                              196, 197, 198, 199})
SUFFIX_SPACE = 10**8
MAX_SUBSCRIBERS = SUFFIX_SPACE


def _segment_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    segs, carriers, probs = [], [], []
    for ci, (carrier, seg_list) in enumerate(SEGMENTS.items()):
        w = np.array([_WEIGHT[s] for s in seg_list])
        segs.extend(seg_list)
        carriers.extend([ci] * len(seg_list))
        probs.extend(CARRIER_SHARE[carrier] * w / w.sum())
    p = np.array(probs)
    return np.array(segs), np.array(carriers), p / p.sum()


SEGMENT, SEGMENT_CARRIER, SEGMENT_P = _segment_table()
CARRIER_NAMES = tuple(SEGMENTS)
PRONE = np.isin(SEGMENT, list(COMPETITOR_PRONE))


def _affine(x: np.ndarray, a: int, b: int) -> np.ndarray:
    return (x * a + b) % SUFFIX_SPACE


def suffixes(index: np.ndarray, seed: int) -> np.ndarray:
    """A bijection of [0, 10^8) keyed by ``seed``: distinct indices, distinct suffixes."""
    keys = np.random.default_rng(np.random.SeedSequence([seed, 8613])).integers(
        0, SUFFIX_SPACE, size=4)
    # Multipliers must be units mod 10^8: odd and not divisible by 5.
    a1, a2 = (int(k) * 10 + 3 for k in keys[:2] % 10**6)
    x = _affine(np.asarray(index, dtype=np.int64), a1, int(keys[2]))
    x = (x % 10**4) * 10**4 + x // 10**4
    return _affine(x, a2, int(keys[3]))


def draw_segments(rng: np.random.Generator, n: int) -> np.ndarray:
    """Index into SEGMENT for ``n`` subscribers."""
    return rng.choice(len(SEGMENT), size=n, p=SEGMENT_P)


def msisdns(segment_code: np.ndarray, index: np.ndarray, seed: int):
    """E.164 numbers (+86 and eleven digits) as an Arrow string array."""
    numbers = SEGMENT[segment_code].astype(np.int64) * SUFFIX_SPACE + suffixes(index, seed)
    return digit_strings("+86", numbers, 11)
