"""The ``review`` benchmark runs end to end at a tiny scale, with and without shared lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from jingxin.bench import REGISTRY


def test_review_benchmark_small_scale(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import jingxin.bench.review  # noqa: F401  (registers the benchmark)

    # Given no shared word lists
    monkeypatch.setenv("JINGXIN_LEXICON_DIR", str(tmp_path / "none"))
    # When the benchmark runs on 40 messages
    figures = REGISTRY["review"].run(40)
    # Then only the synthetic lexicon is measured, and it is the headline
    assert list(figures["lexicons"]) == ["synthetic"]
    assert figures["lexicon_source"] == "synthetic"
    assert figures["lexicon_words"] == 50_000
    assert figures["messages"] == 40 and sum(figures["verdicts"].values()) == 40
    assert figures["review_msgs_per_s"] > figures["baseline_msgs_per_s"] > 0
    assert figures["review_cpu_msgs_per_s"] > 0
    assert figures["meets_target"] == (figures["review_cpu_msgs_per_s"] >= 50_000)


def test_review_benchmark_reports_both_lexicons(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import jingxin.bench.review  # noqa: F401  (registers the benchmark)

    # Given a folder of word lists with everyday words in it (like the public dumps)
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "零时-Tencent.txt").write_text("您好\n流量\n套餐\n", encoding="utf-8")
    monkeypatch.setenv("JINGXIN_LEXICON_DIR", str(folder))
    # When the benchmark runs
    figures = REGISTRY["review"].run(30)
    # Then both lexicons are reported, the shared one first and as the headline
    shared, synthetic = figures["lexicons"]["shared"], figures["lexicons"]["synthetic"]
    assert list(figures["lexicons"]) == ["shared", "synthetic"]
    assert shared["lexicon_source"].startswith(str(folder))
    assert synthetic["lexicon_source"] == "synthetic"
    assert figures["review_cpu_msgs_per_s"] == shared["review_cpu_msgs_per_s"]
    for lexicon in (shared, synthetic):
        assert sum(lexicon["verdicts"].values()) == 30
        assert lexicon["ratio_review_vs_baseline"] > 1
