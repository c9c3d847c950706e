"""Word lists: headers, known files, bad files, and the automaton."""

from __future__ import annotations

from pathlib import Path

import pytest

from jingxin.content.lexicon import Entry, Lexicon, build_lexicon, default_entries, load_wordlist
from jingxin.errors import InputError


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_header_sets_category_and_severity(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.txt", "# category: gambling\n# severity: block\n百家乐\n\n六合彩\n")
    entries = load_wordlist(path)
    assert [(e.word, e.category, e.severity) for e in entries] == [
        ("百家乐", "gambling", "block"),
        ("六合彩", "gambling", "block"),
    ]


def test_without_header_category_is_file_name_and_severity_review(tmp_path: Path) -> None:
    entries = load_wordlist(_write(tmp_path / "loans.txt", "秒批贷款\n"))
    assert (entries[0].category, entries[0].severity) == ("loans", "review")


def test_known_public_file_names_map_advertising_to_review(tmp_path: Path) -> None:
    ad = load_wordlist(_write(tmp_path / "广告类型.txt", "兼职\n"))[0]
    porn = load_wordlist(_write(tmp_path / "色情词库.txt", "裸聊\n"))[0]
    assert (ad.category, ad.severity) == ("advertising", "review")
    assert (porn.category, porn.severity) == ("adult", "block")


@pytest.mark.parametrize(
    ("stem", "severity"),
    [("零时-Tencent", "review"), ("网易前端过滤敏感词库", "review"), ("GFW补充词库", "review")]
    + [("补充词库", "review")]
    + [("暴恐词库", "block"), ("涉枪涉爆", "block"), ("反动词库", "block")],
)
def test_platform_filter_dumps_with_everyday_words_map_to_review(
    tmp_path: Path, stem: str, severity: str
) -> None:
    # Given a public list named like the big chat/forum filter dumps (订购, 电话 ... inside)
    entry = load_wordlist(_write(tmp_path / f"{stem}.txt", "订购\n"))[0]
    # Then a hit asks for review; the violence, weapons and reactionary lists still block
    assert entry.severity == severity


@pytest.mark.parametrize(
    ("name", "content", "encoding", "message"),
    [
        ("bad.txt", "# severity: maybe\n词\n", "utf-8", "line 1: severity 'maybe'"),
        ("gbk.txt", "贷款秒批\n", "gbk", "not UTF-8"),
    ],
)
def test_bad_wordlists(
    tmp_path: Path, name: str, content: str, encoding: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        load_wordlist(_write(tmp_path / name, content, encoding))


def test_unreadable_wordlist_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.txt: cannot read"):
        load_wordlist(tmp_path / "missing.txt")


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no \\*.txt"):
        load_wordlist(tmp_path)


def test_directory_loads_every_list(tmp_path: Path) -> None:
    _write(tmp_path / "a.txt", "甲乙\n")
    _write(tmp_path / "b.txt", "丙丁\n")
    assert {e.category for e in load_wordlist(tmp_path)} == {"a", "b"}


def test_default_lexicon_has_several_categories_and_both_severities() -> None:
    entries = default_entries()
    assert len({e.category for e in entries}) >= 5
    assert {e.severity for e in entries} == {"block", "review"}
    assert len(entries) >= 100


def test_stricter_severity_wins_and_one_char_words_are_skipped() -> None:
    lexicon = Lexicon(
        [
            Entry("兼职", "advertising", "review", "a"),
            Entry("兼職", "fraud", "block", "b"),  # same word after t2s
            Entry("操", "x", "block", "c"),
        ]
    )
    assert len(lexicon) == 1
    assert lexicon.entries[0].severity == "block"


def test_matches_overlap_and_positions() -> None:
    lexicon = Lexicon([Entry("刷单", "f", "block", "t"), Entry("兼职刷单", "f", "block", "t")])
    found = sorted((m.start, m.end, m.entry.word) for m in lexicon.matches("找兼职刷单"))
    assert found == [(1, 5, "兼职刷单"), (3, 5, "刷单")]


def test_scan_ignores_hits_that_start_mid_character() -> None:
    # Given a key whose UTF-16 octets also occur across two other characters' boundary
    key = "\u4e2d\u6587"  # octets 4e 2d 65 87
    text = "\u004e\u2d65\u8700"  # octets 00 4e 2d 65 87 00: contains 4e2d6587 at odd offset
    lexicon = Lexicon([Entry(key, "x", "block", "t")])
    assert lexicon.scan(text) == []
    assert lexicon.scan("说" + key) == [(1, 3, 0)]


def test_empty_lexicon_matches_nothing() -> None:
    lexicon = build_lexicon(include_default=False)
    assert len(lexicon) == 0 and lexicon.scan("任何文字") == []
