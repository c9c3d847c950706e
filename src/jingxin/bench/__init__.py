"""Benchmarks that ship with the product, as pgbench ships with PostgreSQL.

A benchmark is a function registered with :func:`benchmark`; ``jingxin bench --list``
names them and ``jingxin bench NAME [--scale N]`` runs one. Each prints its figures as one
JSON object on its last line: the measured figures, any baseline measured in the same run
and the ratio between them. Benchmarks are not timed tests: they live here and in
``benchmarks/``, and their results are recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Figures = dict[str, Any]


@dataclass(frozen=True)
class Benchmark:
    name: str
    summary: str
    default_scale: int
    run: Callable[[int], Figures]


REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, *, summary: str, default_scale: int) -> Callable:
    """Register ``fn(scale) -> figures`` as the benchmark ``name``."""

    def decorate(fn: Callable[[int], Figures]) -> Callable[[int], Figures]:
        REGISTRY[name] = Benchmark(name, summary, default_scale, fn)
        return fn

    return decorate


def machine() -> Figures:
    """What the figures were measured on."""
    mem_gib = None
    try:
        with open("/proc/meminfo") as fh:
            kib = int(fh.readline().split()[1])
            mem_gib = round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "reference_loop_ms": reference_loop_ms(),
    }


def reference_loop_ms() -> float:
    """The same pure-Python work on every machine (the best of five runs of a 200,000-step
    loop), so that figures from two machines can be set side by side. Machines of this
    project's kind differ: on one that took 23 ms here, ``deliver-one`` ran at a third of
    the rate it had on the machine of the day before. A benchmark's ratio to its baseline
    in the same run stays the figure to compare; this says how fast the machine was."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        sum(i * i for i in range(200_000))
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 1)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return (seconds, result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median_seconds(fn: Callable[[], Any], *, runs: int = 3) -> tuple[float, list[float]]:
    """Median wall time of ``runs`` calls of ``fn`` and the individual times."""
    times = [timed(fn)[0] for _ in range(runs)]
    return statistics.median(times), times


def emit(figures: Figures) -> str:
    """The one JSON line a benchmark ends with."""
    return json.dumps({**figures, "machine": machine()}, ensure_ascii=False, sort_keys=True)
