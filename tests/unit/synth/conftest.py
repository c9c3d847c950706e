"""One small synthetic operator shared by the synth tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jingxin.data.synth import SynthParams, synthesize

SMALL = {"subscribers": 2_000, "seed": 7, "location_subscribers": 400, "cells": 1_500}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "small"
    synthesize(params=SynthParams(**SMALL), out=out)
    return out


@pytest.fixture(scope="session")
def tables(small_run: Path):
    """Every table of the small run as a pandas DataFrame, read once."""
    cache: dict = {}

    def read(name: str):
        if name not in cache:
            cache[name] = pq.read_table(small_run / f"{name}.parquet").to_pandas()
        return cache[name]

    return read
