"""Who is in which arm of an experiment: deterministic assignment by hashing, and its record.

An experiment is named ``<source>:<source id>`` (``campaign:12``, ``journey:<flow>``,
``fence:<code>``). A subscriber's place in it is a pure function of the experiment's name
and the number, so every sender, process and re-run answers the same without asking the
store:

* :func:`unit` maps each number to a uniform value in [0, 1): the first 8 bytes of
  ``sha256(f"{salt}:{msisdn}")`` as a big-endian integer, kept to its top 53 bits (what a
  float64 holds exactly, so the value never rounds up to 1.0), over 2**64.
* :func:`assign` holds out the share ``holdout`` on one hash (salt
  ``f"{experiment}:holdout"``) and splits the rest among the arms by weight on an
  independent one (salt ``f"{experiment}:arm"``), so the hold-out is the same whichever
  arms an experiment has, and the arms are balanced within treated and held-out alike.
* :func:`assign_one` is the per-message form, held to the same answers by a property test.
* :func:`record_assignments` writes who was assigned what - hold-out included - in bulk
  and idempotently (``ON CONFLICT (experiment, msisdn) DO NOTHING``), before anything is
  handed to the delivery entry: arms are compared on who was *assigned*, not on who policy
  let through.

Numbers are hashed as given: callers pass them normalised (E.164). A null number gets a
NaN unit and a null arm, and is never recorded.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingxin.errors import InputError

__all__ = ["HOLDOUT", "MAX_ARM_LENGTH", "assign", "assign_one", "record_assignments", "unit"]

HOLDOUT = "holdout"
MAX_ARM_LENGTH = 32  # experiment_assignments.arm, messages.arm
_SCALE = 2.0**-53
Arms = Sequence[tuple[str, float]]


def unit(msisdns: Sequence[str | None] | pa.Array | pa.ChunkedArray, salt: str) -> np.ndarray:
    """A uniform value in [0, 1) per number (float64; NaN for a null), deterministic for
    the salt. About 0.7 s a million numbers: one SHA-256 each, the rest numpy."""
    return _units(_encoded(_as_list(msisdns)), salt)


def assign(msisdns: Sequence[str | None] | pa.Array | pa.ChunkedArray, *, experiment: str,
           arms: Arms = (("main", 1.0),), holdout: float = 0.0) -> pa.Array:  # fmt: skip
    """The arm of each number (a string array; ``"holdout"`` for the held-out share, null
    for a null number). ``holdout`` must be in [0, 1); arms are (name, weight > 0)."""
    names, bounds = _arms(arms)
    share = _holdout(holdout)
    encoded = _encoded(_as_list(msisdns))
    n = len(encoded)
    if len(names) == 1:
        index = np.zeros(n, dtype=np.int32)
    else:
        index = np.searchsorted(bounds, _units(encoded, f"{experiment}:arm"), side="right")
        index = np.minimum(index, len(names) - 1).astype(np.int32)
    if share > 0:
        index[_units(encoded, f"{experiment}:holdout") < share] = len(names)
    nulls = (np.fromiter((m is None for m in encoded), dtype=bool, count=n)
             if None in encoded else None)  # fmt: skip
    indices = pa.array(index, pa.int32(), mask=nulls)
    dictionary = pa.array([*names, HOLDOUT], pa.string())
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


def assign_one(msisdn: str, *, experiment: str, arms: Arms = (("main", 1.0),),
               holdout: float = 0.0) -> str:  # fmt: skip
    """:func:`assign` for one number: the same answer, without arrays."""
    names, bounds = _arms(arms)
    share = _holdout(holdout)
    if share > 0 and _unit_one(msisdn, f"{experiment}:holdout") < share:
        return HOLDOUT
    if len(names) == 1:
        return names[0]
    index = bisect.bisect_right(bounds.tolist(), _unit_one(msisdn, f"{experiment}:arm"))
    return names[min(index, len(names) - 1)]


def record_assignments(store, *, experiment: str, tenant_id: str,
                       msisdns: pa.Array | pa.ChunkedArray | Sequence[str | None],
                       arms: pa.Array | pa.ChunkedArray | Sequence[str | None],
                       at: datetime) -> int:  # fmt: skip
    """Write (experiment, msisdn, arm) for every non-null number - ``holdout`` rows flagged
    - skipping numbers already assigned in this experiment; returns how many rows were new.
    One transaction: PostgreSQL by COPY and one ``INSERT ... SELECT``, SQLite by one
    ``executemany`` (:func:`jingxin.data.store.bulk.insert_new`). A number twice in the
    input is recorded once, with its first arm."""
    from jingxin.data.store.bulk import insert_new
    from jingxin.data.store.engine import store_errors

    if at.tzinfo is None:
        raise InputError("record_assignments: 'at' must be an aware datetime")
    table = _assignment_table(experiment, tenant_id, msisdns, arms, at)
    if not table.num_rows:
        return 0
    with store_errors(f"recording {table.num_rows} assignments of {experiment}"), \
            store.engine.begin() as connection:  # fmt: skip
        return insert_new(connection, into="experiment_assignments", table=table,
                          key="experiment, msisdn")  # fmt: skip


# --------------------------------------------------------------------------- internals


def _as_list(msisdns) -> list[str | None]:
    if isinstance(msisdns, pa.ChunkedArray | pa.Array):
        return msisdns.cast(pa.string()).to_pylist()
    if isinstance(msisdns, str):
        raise InputError("expected a sequence of numbers, got one string")
    return list(msisdns)


def _encoded(values: list[str | None]) -> list[bytes | None]:
    if None in values:
        return [None if m is None else m.encode() for m in values]
    return [m.encode() for m in values]


def _units(encoded: list[bytes | None], salt: str) -> np.ndarray:
    """:func:`unit` of numbers already encoded (so several salts share one encoding)."""
    missing = [i for i, m in enumerate(encoded) if m is None] if None in encoded else []
    if missing:
        encoded = [b"" if m is None else m for m in encoded]
    # The salt's state is hashed once and copied per number: about twice as fast as a
    # new hash of salt + number each time.
    salted = hashlib.sha256(f"{salt}:".encode()).copy
    digests = bytearray()
    for number in encoded:
        digest = salted()
        digest.update(number)
        digests += digest.digest()
    words = np.frombuffer(bytes(digests), dtype=">u8")[::4].astype(np.uint64)  # first 8 of 32
    out = (words >> np.uint64(11)).astype(np.float64) * _SCALE
    if missing:
        out[missing] = np.nan
    return out


def _unit_one(msisdn: str, salt: str) -> float:
    word = int.from_bytes(hashlib.sha256(f"{salt}:{msisdn}".encode()).digest()[:8], "big")
    return (word >> 11) * _SCALE


def _arms(arms: Arms) -> tuple[list[str], np.ndarray]:
    """Names and the upper bounds of each arm's slice of [0, 1)."""
    arms = list(arms)
    if not arms:
        raise InputError("an experiment needs at least one arm")
    names = [name for name, _ in arms]
    for name, weight in arms:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_ARM_LENGTH:
            raise InputError(f"arm {name!r}: a name of 1 to {MAX_ARM_LENGTH} characters")
        if name == HOLDOUT:
            raise InputError(f"arm {name!r}: the name is kept for the hold-out")
        if isinstance(weight, bool) or not isinstance(weight, int | float) \
                or not math.isfinite(weight) or weight <= 0:  # fmt: skip
            raise InputError(f"arm {name}: weight {weight!r} must be a number above 0")
        if names.count(name) > 1:
            raise InputError(f"arm {name} is given more than once")
    weights = np.array([float(w) for _, w in arms], dtype=np.float64)
    return names, np.cumsum(weights) / weights.sum()


def _holdout(holdout: float) -> float:
    if isinstance(holdout, bool) or not isinstance(holdout, int | float) \
            or not 0.0 <= holdout < 1.0:  # fmt: skip
        raise InputError(f"holdout {holdout!r}: a share of at least 0 and below 1 "
                         "(the [analytics] holdout setting or a spec's experiment.holdout)")  # fmt: skip
    return float(holdout)


def _assignment_table(experiment, tenant_id, msisdns, arms, at) -> pa.Table:
    numbers = pa.array(_as_list(msisdns), pa.string())
    arm_values = pa.array(_as_list(arms), pa.string())
    if len(numbers) != len(arm_values):
        raise InputError(f"record_assignments: {len(numbers)} numbers but {len(arm_values)} arms")
    keep = pc.and_(pc.is_valid(numbers), pc.is_valid(arm_values))
    numbers, arm_values = numbers.filter(keep), arm_values.filter(keep)
    if len(numbers):
        # Dedupe in the input (first arm wins), so SQLite and PostgreSQL count alike.
        rows = pa.table({"m": numbers, "i": pa.array(np.arange(len(numbers)))})
        first = rows.group_by("m").aggregate([("i", "min")]).column("i_min")
        if len(first) < len(numbers):
            order = pc.sort_indices(first)
            first = first.take(order)
            numbers, arm_values = numbers.take(first), arm_values.take(first)
    n = len(numbers)
    return pa.table({
        "experiment": pa.repeat(pa.scalar(experiment, pa.string()), n),
        "msisdn": numbers,
        "arm": arm_values,
        "holdout": pc.equal(arm_values, HOLDOUT) if n else pa.array([], pa.bool_()),
        "tenant_id": pa.repeat(pa.scalar(tenant_id, pa.string()), n),
        "assigned_at": pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), n),
    })  # fmt: skip
