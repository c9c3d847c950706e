"""Arrow column builders for the bulk paths: strings, dates and timestamps from numpy.

Building Arrow strings from Python objects is the slow part of a naive generator; here
fixed-width identifiers are assembled as bytes in numpy and wrapped as Arrow buffers, and
categorical strings are taken from a small dictionary by code.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa


def digit_strings(prefix: str, values: np.ndarray, width: int) -> pa.Array:
    """``prefix`` followed by ``values`` as zero-padded decimals of ``width`` digits."""
    values = np.asarray(values, dtype=np.int64)
    n = len(values)
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    size = len(head) + width
    buf = np.empty((n, size), dtype=np.uint8)
    buf[:, : len(head)] = head
    rest = values.copy()
    for pos in range(size - 1, len(head) - 1, -1):
        buf[:, pos] = 48 + (rest % 10)
        rest //= 10
    offsets = np.arange(0, size * (n + 1), size, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf.tobytes()))


def prefixed_strings(prefixes: np.ndarray, values: np.ndarray, width: int) -> pa.Array:
    """Per-row 3-character ASCII ``prefixes`` (bytes ``S3``) followed by ``values``."""
    n = len(values)
    head = np.frombuffer(np.ascontiguousarray(prefixes, dtype="S3").tobytes(), np.uint8)
    size = 3 + width
    buf = np.empty((n, size), dtype=np.uint8)
    buf[:, :3] = head.reshape(n, 3)
    rest = np.asarray(values, dtype=np.int64).copy()
    for pos in range(size - 1, 2, -1):
        buf[:, pos] = 48 + (rest % 10)
        rest //= 10
    offsets = np.arange(0, size * (n + 1), size, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf.tobytes()))


@lru_cache(maxsize=64)
def _matrix(labels: tuple[str, ...]) -> np.ndarray | None:
    return same_width(list(labels))


def same_width(labels: list[str]) -> np.ndarray | None:
    """The labels as an (n, width) byte matrix when they all have one width, else None."""
    encoded = [x.encode("utf-8") for x in labels]
    width = len(encoded[0]) if encoded else 0
    if not encoded or any(len(e) != width for e in encoded):
        return None
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).reshape(len(encoded), width)


def take_fixed(matrix: np.ndarray, codes: np.ndarray) -> pa.Array:
    """Strings ``labels[codes]`` for equal-width labels given as a byte matrix: one numpy
    gather, several times faster than a string take."""
    n, width = len(codes), matrix.shape[1]
    data = matrix[codes]
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))


def categorical(labels: list[str] | tuple[str, ...] | pa.Array, codes: np.ndarray,
                mask: np.ndarray | None = None) -> pa.Array:
    """Strings ``labels[codes]``; rows where ``mask`` is true are null."""
    if mask is None and isinstance(labels, tuple):
        matrix = _matrix(labels)
        if matrix is not None:
            return take_fixed(matrix, np.asarray(codes))
    dictionary = labels if isinstance(labels, pa.Array) else pa.array(list(labels), pa.string())
    indices = pa.array(np.asarray(codes, dtype=np.int32), mask=mask)
    return dictionary.take(indices)


def dates(days: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """``date32`` from days since 1970-01-01."""
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.int32(), mask=mask).cast(
        pa.date32())


def timestamps(micros: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """``timestamp[us]`` (naive, China Standard Time) from microseconds since the epoch."""
    return pa.array(np.asarray(micros, dtype=np.int64), type=pa.int64(), mask=mask).cast(
        pa.timestamp("us"))
