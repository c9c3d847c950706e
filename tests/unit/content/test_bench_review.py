"""The ``review`` benchmark runs end to end at a tiny scale (synthetic lexicon)."""

from __future__ import annotations

import pytest

from jingxin.bench import REGISTRY


def test_review_benchmark_small_scale(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import jingxin.bench.review  # noqa: F401  (registers the benchmark)

    monkeypatch.setenv("JINGXIN_LEXICON_DIR", str(tmp_path / "none"))
    figures = REGISTRY["review"].run(40)
    assert figures["lexicon_source"] == "synthetic"
    assert figures["lexicon_words"] == 50_000
    assert figures["messages"] == 40 and sum(figures["verdicts"].values()) == 40
    assert figures["review_msgs_per_s"] > figures["baseline_msgs_per_s"] > 0
