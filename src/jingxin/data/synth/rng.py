"""Random streams of the synthetic operator: one per (seed, table, chunk).

Every chunk of every table draws from its own generator, derived with
:class:`numpy.random.SeedSequence` from the run's seed, a stable number for the table and
the chunk index. Output therefore depends only on the parameters, never on timing or on
the order in which chunks happen to run.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, table: str, chunk: int = 0) -> np.random.Generator:
    """The generator for ``table``'s chunk ``chunk`` in the run seeded with ``seed``."""
    table_key = zlib.crc32(table.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([seed, table_key, chunk]))
