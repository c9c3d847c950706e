"""Handset models and their network generation; older subscribers keep older phones.

Shares per age band are a judgement from public 2024 figures (5G handsets about 60% of
those in use, feature phones concentrated among the elderly).
"""

from __future__ import annotations

import numpy as np

MODELS: tuple[tuple[str, int], ...] = (
    ("iPhone 16 Pro", 5), ("iPhone 15", 5), ("iPhone 13", 5), ("HUAWEI Mate 60 Pro", 5),
    ("HUAWEI P70", 5), ("HUAWEI nova 12", 5), ("Xiaomi 14", 5), ("Redmi K70", 5),
    ("OPPO Reno12", 5), ("vivo X100", 5), ("vivo Y200", 5), ("HONOR 200", 5),
    ("iPhone 11", 4), ("iPhone 8", 4), ("HUAWEI P30", 4), ("HUAWEI Enjoy 20", 4),
    ("Redmi Note 9", 4), ("OPPO A57", 4), ("vivo Y33s", 4), ("HONOR Play 30", 4),
    ("Samsung Galaxy S7", 3), ("HUAWEI G610", 3), ("Coolpad 8720L", 3),
    ("Nokia 105", 2), ("Koobee K8", 2), ("Philips E209", 2),
)
NAMES = tuple(m for m, _ in MODELS)
GENERATION = np.array([g for _, g in MODELS], dtype=np.int64)
BY_GENERATION = {g: np.flatnonzero(GENERATION == g) for g in (2, 3, 4, 5)}
# P(generation 5, 4, 3, 2) by age band: <30, 30-49, 50-64, 65+
AGE_BANDS = np.array([30, 50, 65])
GEN_P = np.array([
    [0.78, 0.21, 0.01, 0.00],
    [0.62, 0.35, 0.02, 0.01],
    [0.38, 0.52, 0.06, 0.04],
    [0.16, 0.52, 0.12, 0.20],
])


def draw(rng: np.random.Generator, age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(model code, generation) for each subscriber of the given age."""
    band = np.searchsorted(AGE_BANDS, age, side="right")
    cum = np.cumsum(GEN_P[band], axis=1)
    pick = (rng.random(len(age))[:, None] > cum).sum(axis=1).clip(0, 3)
    generation = np.array([5, 4, 3, 2])[pick]
    model = np.empty(len(age), dtype=np.int64)
    for g, codes in BY_GENERATION.items():
        sel = generation == g
        model[sel] = codes[rng.integers(0, len(codes), int(sel.sum()))]
    return model, generation
