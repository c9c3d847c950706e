"""Benchmark ``review``: content review of 70-character SMS against a 50,000-word lexicon.

The lexicon is the public konsheng/Sensitive-lexicon under ``/work/shared/data`` (or
``$JINGXIN_LEXICON_DIR``) topped up with synthetic words to 50,000; without it, all
synthetic. Messages are rendered starter-library texts cut to 70 characters; one in
twenty carries a lexicon word disguised with a symbol, a space or traditional script.
Figures: full review (normalise, automaton, links, phones, signature, parts) and the
match step alone, in messages per second on one core, and the naive baseline
``[w for w in words if w in text]`` (every word, as review reports every word) over
the same normalised keys and text, on a sample of the messages. ``review_cpu_msgs_per_s``
uses process time, steadier than wall time on a shared machine.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from jingxin.bench import benchmark

LEXICON_WORDS = 50_000
MESSAGE_CHARS = 70
SHARED_LEXICON = Path("/work/shared/data/sensitive_lexicon/Vocabulary")
BASELINE_SAMPLE = 300
_COMMON = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能"
    "下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量"
)


def _lexicon_entries(rng: random.Random) -> tuple[list[Any], str]:
    from jingxin.content.lexicon import MIN_WORD_LENGTH, Entry, load_wordlist
    from jingxin.content.normalise import default_normaliser

    normalise = default_normaliser().normalise
    folder = Path(os.environ.get("JINGXIN_LEXICON_DIR", SHARED_LEXICON))
    entries = load_wordlist(folder) if folder.is_dir() else []
    source = f"{folder} + synthetic" if entries else "synthetic"
    keys = {k for e in entries if len(k := normalise(e.word)) >= MIN_WORD_LENGTH}
    while len(keys) < LEXICON_WORDS:  # the shared lists give ~48k distinct usable words
        word = "".join(rng.choice(_COMMON) for _ in range(rng.randint(3, 5)))
        if word not in keys:
            keys.add(word)
            entries.append(Entry(word, "synthetic", "block", "synthetic"))
    return entries, source


def _messages(count: int, words: list[str], rng: random.Random) -> list[str]:
    from jingxin.content.library import starter_library
    from jingxin.content.templates import render

    texts = []
    for doc in starter_library():
        rendered = render(doc.compile(), doc.sample, category=doc.category, signature="中国移动")
        texts.append(rendered.text)
    messages = []
    for i in range(count):
        base = texts[i % len(texts)]
        offset = rng.randint(0, max(len(base) - MESSAGE_CHARS, 0))
        text = base[:6] + base[6 + offset :][: MESSAGE_CHARS - 6]
        if i % 20 == 0:
            word = rng.choice(words)[:12]
            disguised = word[0] + rng.choice("* ·") + word[1:] if len(word) > 1 else word
            cut = rng.randint(6, max(6, len(text) - len(disguised)))
            text = (text[:cut] + disguised + text[cut + len(disguised) :])[:MESSAGE_CHARS]
        messages.append(text)
    return messages


def _time_review(reviewer: Any, messages: list[str]) -> tuple[float, float, dict[str, int]]:
    """(wall seconds, CPU seconds, verdict counts) of reviewing every message."""
    start, cpu_start = time.perf_counter(), time.process_time()
    verdicts: dict[str, int] = {}
    for text in messages:
        verdict = reviewer.review(text, category="notification").verdict
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    return time.perf_counter() - start, time.process_time() - cpu_start, verdicts


def _time_baseline(keys: list[str], sample: list[str]) -> tuple[float, int]:
    """The naive loop. Like the review it must find every word (spans are reported), so
    no early exit; it gets the same normalised keys and text."""
    start = time.perf_counter()
    hits = sum(1 for text in sample if [word for word in keys if word in text])
    return time.perf_counter() - start, hits


@benchmark(
    "review",
    summary="content review msgs/s (70-char SMS, 50k-word lexicon) vs naive `in` loop",
    default_scale=200_000,
)
def run(scale: int) -> dict[str, Any]:
    from jingxin.content.lexicon import Lexicon
    from jingxin.content.normalise import default_normaliser
    from jingxin.content.review import Reviewer

    rng = random.Random(20261123)
    entries, source = _lexicon_entries(rng)
    start = time.perf_counter()
    lexicon = Lexicon(entries, normaliser=default_normaliser())
    build_seconds = time.perf_counter() - start
    messages = _messages(scale, [e.word for e in entries], rng)
    reviewer = Reviewer(lexicon=lexicon)
    review_seconds, review_cpu_seconds, verdicts = _time_review(reviewer, messages)

    normalise, scan = lexicon.normaliser.normalise, lexicon.scan
    start = time.perf_counter()
    hits = sum(1 for text in messages if scan(normalise(text)))
    match_seconds = time.perf_counter() - start
    clean = [text for text in messages if not scan(normalise(text))]
    clean_seconds = _time_review(reviewer, clean)[0] if clean else 0.0

    keys = [normalise(e.word) for e in lexicon.entries]
    sample = [normalise(text) for text in messages[:BASELINE_SAMPLE]]
    naive_seconds, naive_hits = _time_baseline(keys, sample)
    review_rate, naive_rate = scale / review_seconds, len(sample) / naive_seconds
    return {
        "messages": scale,
        "message_chars": MESSAGE_CHARS,
        "lexicon_words": len(keys),
        "lexicon_source": source,
        "lexicon_build_seconds": round(build_seconds, 3),
        "review_msgs_per_s": round(review_rate),
        "review_cpu_msgs_per_s": round(scale / review_cpu_seconds),
        "review_clean_msgs_per_s": round(len(clean) / clean_seconds) if clean else None,
        "match_only_msgs_per_s": round(scale / match_seconds),
        "lexicon_hit_share": round(hits / scale, 3),
        "verdicts": verdicts,
        "baseline": "[w for w in words if w in text] on the same normalised text and keys",
        "baseline_sample": len(sample),
        "baseline_msgs_per_s": round(naive_rate, 1),
        "baseline_hits_in_sample": naive_hits,
        "ratio_review_vs_baseline": round(review_rate / naive_rate, 1),
        "target_msgs_per_s": 50_000,
    }
