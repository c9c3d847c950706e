"""jingxin.data.textfile: UTF-8 by default, a named encoding on request, and one line that
names a GBK (or UTF-16) file and the fix; every user-file reader goes through it."""

from __future__ import annotations

import pytest

from jingxin.audience.spec import load_spec
from jingxin.content.lexicon import load_wordlist
from jingxin.data.textfile import check_encoding, guess_encoding, read_text
from jingxin.errors import InputError, SpecError
from jingxin.smsc.mo import read_script

CHINESE = "# 营销词\n贷款\n中奖啦\n"


@pytest.mark.parametrize(("data", "guess"), [
    (CHINESE.encode("gbk"), "GBK/GB18030"),
    ("地区,海淀\n".encode("gb18030"), "GBK/GB18030"),
    ("region,海淀\n".encode("utf-16"), "UTF-16"),
    (b"\xff\xfe\x00\x81" * 50, None),            # noise after a BOM-looking start
    ("café crème".encode("latin-1"), None),      # not Chinese: no guess
])
def test_guess_encoding(data, guess):
    assert guess_encoding(data) == guess


def test_utf8_with_or_without_bom_reads(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbf" + CHINESE.encode())
    (tmp_path / "b.txt").write_text(CHINESE, encoding="utf-8")
    assert read_text(tmp_path / "a.txt") == read_text(tmp_path / "b.txt") == CHINESE


def test_gbk_is_named_with_the_fix_and_reads_with_its_encoding(tmp_path):
    path = tmp_path / "words.txt"
    path.write_bytes(CHINESE.encode("gbk"))
    with pytest.raises(InputError) as caught:
        read_text(path, what="word list", encoding_option="--encoding")
    assert str(caught.value) == (f"{path}: the word list is not UTF-8 (looks like GBK/GB18030?)"
                                 ": re-save it as UTF-8 or pass --encoding gbk")
    with pytest.raises(SpecError, match="re-save it as UTF-8$"):
        read_text(path, error=SpecError)  # no option to offer: only the re-save
    assert read_text(path, encoding="gbk") == CHINESE
    assert read_text(path, encoding="GB18030") == CHINESE


def test_a_wrong_encoding_names_the_line_and_unknown_ones_are_refused(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"ok\n\x81\n")
    with pytest.raises(InputError, match="line 2: not valid gbk text"):
        read_text(path, encoding="gbk")
    with pytest.raises(InputError, match="unknown encoding"):
        read_text(path, encoding="martian")
    with pytest.raises(InputError, match="no such file"):
        read_text(tmp_path / "none.txt")


def test_check_encoding_sniffs_the_head(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("msisdn,地区\n".encode("gbk"))
    with pytest.raises(InputError, match="looks like GBK"):
        check_encoding(path)
    assert check_encoding(path, encoding="gbk") == "gb18030"
    path.write_text("msisdn,地区\n", encoding="utf-8")
    assert check_encoding(path) == "utf-8"


def test_the_readers_name_a_gbk_file(tmp_path):
    # Given a lexicon, a segment spec and an MO script saved as GBK
    lexicon = tmp_path / "words.txt"
    lexicon.write_bytes(CHINESE.encode("gbk"))
    spec = tmp_path / "seg.yaml"
    spec.write_bytes("name: 高价值\nwhere: {}\n".encode("gbk"))
    script = tmp_path / "mo.txt"
    script.write_bytes("0, 13812345678, 10086, 退订\n".encode("gbk"))
    # When each is read / Then each says which file and how to fix it
    with pytest.raises(InputError, match="the lexicon file is not UTF-8 .*GBK"):
        load_wordlist(lexicon)
    with pytest.raises(SpecError, match="the segment spec is not UTF-8 .*GBK"):
        load_spec(spec)
    with pytest.raises(InputError, match="the MO script is not UTF-8 .*GBK"):
        read_script(script)
