"""Event columns of a replay file checked and converted at once: ``msisdn``, ``cell``,
``ts`` and ``type`` as Arrow arrays in, one :class:`~jingxin.geofence.types.EventBatch`
out, with a mask of the good rows and, per column, why the others are bad.

Kept apart from :mod:`jingxin.geofence.sources` (which owns reading files: chunks,
positions, pacing) because this is the validation contract of the event format itself.
``ts`` is ISO-8601 (naive: local time at ``utc_offset_seconds``; or with ``Z`` / an
offset), epoch milliseconds, or an Arrow timestamp column (naive: local time). ``type`` is
one of EVENT_TYPES; missing or empty means ``update``. Nothing here raises for a bad row:
a row is marked bad and :func:`sample_reasons` says why, in words, for the few shown;
only a ``ts`` column of an unusable type is refused (InputError).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingxin.errors import InputError
from jingxin.geofence.types import EVENT_TYPES, EventBatch, to_msisdn_int
from jingxin.logs import mask

COLUMNS = ("msisdn", "cell", "ts", "type")  # "type" may be left out: every event an update
EPOCH_MS_MIN = 10**11  # 1973-03-03 in ms: a smaller integer ts is epoch seconds, a mistake

# ISO-8601 date and time, optional seconds, fraction and zone. Parsed here, with a regular
# expression and civil-date arithmetic in numpy, because Arrow's casts and strptime fail a
# whole array for one bad value and take neither a free fraction nor an optional offset.
_ISO = (r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[T ](?P<h>\d{2}):(?P<mi>\d{2})"
        r"(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
        r"\s*(?P<z>[Zz]|(?P<zs>[+-])(?P<zh>\d{2})(?::?(?P<zm>\d{2}))?)?$")  # fmt: skip
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


@dataclass
class Checked:
    """One batch's columns checked: ``batch`` holds every row (bad ones zero), ``ok``
    the good ones, ``blank`` the empty lines; the rest says why a row is bad."""

    batch: EventBatch
    ok: np.ndarray
    blank: np.ndarray
    text: dict[str, pa.Array | None]  # the raw values as strings (None: not text)
    bad: dict[str, np.ndarray]  # per column; "utf8" for undecodable bytes
    ts_seconds: np.ndarray  # an integer ts too small for milliseconds


def check_columns(cols: dict[str, pa.Array], *, utc_offset_seconds: int,
                  blank_skip: bool) -> Checked:  # fmt: skip
    """Columns ``msisdn``, ``cell``, ``ts`` (and maybe ``type``) as events, vectorised."""
    n = len(cols["msisdn"])
    undecodable = np.zeros(n, bool)
    text: dict[str, pa.Array | None] = {}
    for name, arr in cols.items():
        text[name], broken = _text(arr)
        undecodable |= broken
    msisdn, bad_msisdn = to_msisdn_int(text["msisdn"] if text["msisdn"] is not None
                                       else cols["msisdn"])  # fmt: skip
    cell = pc.fill_null(pc.utf8_trim_whitespace(text["cell"]), "")
    bad_cell = pc.equal(pc.utf8_length(cell), 0).to_numpy(zero_copy_only=False)
    ts, bad_ts, seconds = _epoch_ms(cols["ts"], text["ts"], utc_offset_seconds)
    kind, bad_kind = _kinds(text.get("type"), n)
    blank = np.zeros(n, bool)
    if blank_skip:
        blank = bad_cell.copy()
        for name in ("msisdn", "ts", "type"):
            if text.get(name) is not None:
                empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text[name])), 0)
                blank &= pc.fill_null(empty, True).to_numpy(zero_copy_only=False)
    bad = {"utf8": undecodable, "msisdn": bad_msisdn, "cell": bad_cell, "ts": bad_ts,
           "type": bad_kind}  # fmt: skip
    ok = ~(undecodable | bad_msisdn | bad_cell | bad_ts | bad_kind | blank)
    return Checked(EventBatch(msisdn, cell, ts, kind), ok, blank, text, bad, seconds)


def sample_reasons(c: Checked, rows: np.ndarray) -> list[str]:
    """Why each of ``rows`` (few: the samples) is bad, in words."""
    def raw(name: str, i: int) -> str:
        arr = c.text.get(name)
        value = arr[i].as_py() if arr is not None else None
        return "" if value is None else str(value).strip()

    out = []
    for i in (int(r) for r in rows):
        if c.bad["utf8"][i]:
            out.append("not UTF-8 text (a GBK export? iconv -f gbk -t utf-8 converts it)")
        elif c.bad["msisdn"][i]:
            value = raw("msisdn", i)
            out.append(f"msisdn {mask(value)!r} is not a mobile number" if value
                       else "no msisdn")  # fmt: skip
        elif c.bad["cell"][i]:
            out.append("no cell")
        elif c.bad["ts"][i]:
            value = raw("ts", i)
            out.append(f"ts {value} looks like epoch seconds; epoch milliseconds expected"
                       if c.ts_seconds[i] else f"ts {value!r} is neither ISO-8601 nor epoch "
                       "milliseconds" if value else "no ts")  # fmt: skip
        else:
            out.append(f"type {raw('type', i)!r} is not one of {', '.join(EVENT_TYPES)}")
    return out


def _text(arr: pa.Array) -> tuple[pa.Array | None, np.ndarray]:
    """A column as strings (None if it is no text column) and the rows that are not UTF-8."""
    broken = np.zeros(len(arr), bool)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return pc.cast(arr, pa.string()), broken
    if not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
        return None, broken
    try:
        return pc.cast(arr, pa.string()), broken
    except pa.ArrowInvalid:  # rare: decode value by value to find the bad ones
        values = []
        for i, v in enumerate(arr.to_pylist()):
            try:
                values.append(None if v is None else v.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(None)
                broken[i] = True
        return pa.array(values, pa.string()), broken


def _kinds(text: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    if text is None:
        return np.zeros(n, np.uint8), np.zeros(n, bool)
    t = pc.fill_null(pc.utf8_lower(pc.utf8_trim_whitespace(text)), "")
    index = pc.index_in(t, value_set=pa.array(EVENT_TYPES))
    index = pc.if_else(pc.equal(t, ""), 0, index)
    bad = index.is_null().to_numpy(zero_copy_only=False)
    return pc.fill_null(index, 0).to_numpy(zero_copy_only=False).astype(np.uint8), bad


def _epoch_ms(col: pa.Array, text: pa.Array | None,
              offset_s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``ts`` as epoch ms; bad rows; rows that look like epoch seconds."""
    n = len(col)
    if pa.types.is_timestamp(col.type):
        local = col.type.tz is None
        ms = pc.cast(pc.cast(col, pa.timestamp("ms", col.type.tz)), pa.int64())
        bad = ms.is_null().to_numpy(zero_copy_only=False)
        out = pc.fill_null(ms, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        return out - (offset_s * 1000 if local else 0), bad, np.zeros(n, bool)
    if pa.types.is_integer(col.type):
        ms = pc.fill_null(pc.cast(col, pa.int64()), 0).to_numpy(zero_copy_only=False)
        seconds = ms < EPOCH_MS_MIN
        return ms, seconds, seconds & col.is_valid().to_numpy(zero_copy_only=False)
    if text is None:
        raise InputError(f"column 'ts' is {col.type}: ISO-8601 text, epoch milliseconds "
                         "or a timestamp expected")  # fmt: skip
    t = pc.fill_null(pc.utf8_trim_whitespace(text), "")
    digits = pc.match_substring_regex(t, r"^\d{1,18}$").to_numpy(zero_copy_only=False)
    ms = pc.cast(pc.if_else(digits, t, "0"), pa.int64()).to_numpy(zero_copy_only=False).copy()
    seconds = digits & (ms < EPOCH_MS_MIN)
    bad = ~digits | seconds
    others = np.flatnonzero(~digits)
    if len(others):  # ISO text: parsed only where it is not an integer
        iso, iso_ok = _iso_ms(t.take(pa.array(others)), offset_s)
        ms[others], bad[others] = iso, ~iso_ok
    return ms.astype(np.int64, copy=False), bad, seconds


def _iso_ms(t: pa.Array, offset_s: int) -> tuple[np.ndarray, np.ndarray]:
    parts = pc.extract_regex(t, _ISO)
    matched = parts.is_valid().to_numpy(zero_copy_only=False)

    def num(name: str) -> np.ndarray:
        f = parts.field(name)
        f = pc.if_else(pc.equal(f, ""), "0", f)
        return pc.cast(f, pa.int64()).to_numpy(zero_copy_only=False)

    y, mo, d, h, mi, s = (num(k) for k in ("y", "mo", "d", "h", "mi", "s"))
    frac = pc.utf8_rpad(pc.utf8_slice_codeunits(parts.field("f"), 0, 3), width=3, padding="0")
    ms = pc.cast(frac, pa.int64()).to_numpy(zero_copy_only=False)
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    dim = _MONTH_DAYS[np.clip(mo, 1, 12) - 1] + ((mo == 2) & leap)
    zh, zm = num("zh"), num("zm")
    valid = (matched & (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= dim) & (h <= 23) & (mi <= 59)
             & (s <= 59) & (zh <= 23) & (zm <= 59))  # fmt: skip
    # days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)
    yy = y - (mo <= 2)
    era = np.floor_divide(yy, 400)
    yoe = yy - era * 400
    doy = (153 * ((mo + 9) % 12) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    zone = parts.field("z").to_numpy(zero_copy_only=False)
    sign = np.where(parts.field("zs").to_numpy(zero_copy_only=False) == "-", -1, 1)
    offset = np.where(zone == "", offset_s, sign * (zh * 3600 + zm * 60))
    offset = np.where(np.isin(zone, ["Z", "z"]), 0, offset)
    total = ((days * 86400 + h * 3600 + mi * 60 + s) - offset) * 1000 + ms
    return np.where(valid, total, 0).astype(np.int64), valid
