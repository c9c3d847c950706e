"""The hall's menu file: the packaged default, halls by service number, and errors that
name the file, the hall and the field (or the line of a YAML error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jingxin.data.store.models import DEFAULT_TENANT_ID
from jingxin.errors import ConfigError
from jingxin.hall.menu import check_menu, load_menu

HALL = """\
halls:
  - service_number: "10086"
    name: 营业厅
    menu: 回复41查看免费体验
  - service_number: 1008688
    tenant: acme
    name: 商户厅
    menu: 回复0查看菜单
    zones:
      "42": {title: 特惠}
    rewards:
      - {code: K1, title: 咖啡券, merchant: M001, value_fen: 1000, points: 100}
    survey: {id: s1, question: 请打分}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "menu.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_packaged_menu_is_the_operator_hall_at_10086() -> None:
    menu = load_menu()
    (hall,) = menu.halls
    assert (hall.service_number, hall.tenant) == ("10086", DEFAULT_TENANT_ID)
    assert set(hall.zones) == {"41", "42", "43"}
    assert (hall.zones["42"].discount_pct, hall.zones["42"].discounted_months) == (20, 3)
    assert (hall.zones["43"].limit, hall.zones["41"].trial_days) == (5, 7)
    assert set(hall.complaint_words) == {"投诉", "举报", "骚扰", "12321", "315"}
    assert [r.merchant for r in hall.rewards][:1] == ["M001"] and len(hall.rewards) == 3
    assert hall.survey is not None and "0-10" in hall.survey.question
    assert check_menu() == []


def test_halls_are_found_by_number_exact_or_longest_prefix(tmp_path) -> None:
    menu = load_menu(write(tmp_path, HALL))
    assert menu.hall_for("10086").name == "营业厅"
    assert menu.hall_for("1008601").name == "营业厅"  # extension digits
    assert menu.hall_for("1008688").tenant == "acme"  # unquoted number read as text
    assert menu.hall_for("100868812").tenant == "acme"  # the longer prefix wins
    assert menu.hall_for("10010") is None
    assert menu.service_numbers == ["10086", "1008688"]


def test_a_hall_gets_the_defaults_of_its_zones_and_finds_rewards_by_either_case(tmp_path) -> None:
    hall = load_menu(write(tmp_path, HALL)).hall_for("1008688")
    # Only the zones it names, with 42's pricing rule and limit filled in
    assert list(hall.zones) == ["42"]
    assert (hall.zones["42"].discount_pct, hall.zones["42"].discounted_months,
            hall.zones["42"].limit) == (20, 3, 10)  # fmt: skip
    assert hall.reward("k1").code == "K1" and hall.reward("Ｋ１").title == "咖啡券"
    assert hall.reward("k9") is None


@pytest.mark.parametrize(("text", "message"), [
    # a YAML syntax error names the line
    ("halls:\n  - service_number: '10086'\n    name: [oops\n",
     r"menu\.yaml: line \d+: invalid YAML"),
    ("42", r"expected 'halls:'"),
    ("halls: []", r"field 'halls'"),
    # a bad field names the hall (index and number) and the field
    (HALL.replace("value_fen: 1000", "value_fen: -5"),
     r"halls\[1\] \(1008688\): field 'rewards\.0\.value_fen': .*greater than 0"),
    (HALL.replace('"42": {title: 特惠}', '"44": {title: 特惠}'),
     r"halls\[1\] \(1008688\): field 'zones': zone '44': the hall has zones 41, 42, 43"),
    (HALL.replace('"42": {title: 特惠}', '"41": {title: 体验, discount_pct: 10}'),
     r"field 'zones': zone '41': only zone 42 has a discount"),
    (HALL.replace('"42": {title: 特惠}', '"42": {title: 特惠, trial_days: 3}'),
     r"field 'zones': zone '42': only zone 41 has a free trial"),
    (HALL.replace("    name: 营业厅\n", ""), r"halls\[0\] \(10086\): field 'name': Field required"),
    (HALL.replace("menu: 回复41查看免费体验", "menu: x\n    colour: red"),
     r"halls\[0\] \(10086\): field 'colour': Extra inputs"),
    (HALL.replace('service_number: "10086"', 'service_number: "1008x"'),
     r"halls\[0\] \(1008x\): field 'service_number'"),
    (HALL.replace("code: K1", "code: K-1"), r"'K-1': a reward code is letters and digits"),
    (HALL.replace("    survey: {id: s1, question: 请打分}\n",
                  "      - {code: k1, title: b, merchant: M1, value_fen: 1, points: 1}\n"),
     r"rewards: code\(s\) k1 listed twice"),
    (HALL.replace("1008688", "10086"), r"service number\(s\) 10086 have two halls"),
])  # fmt: skip
def test_a_bad_menu_file_says_where(tmp_path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_menu(path)
    assert str(caught.value).startswith(str(path))
    assert check_menu(path) == [str(caught.value)]


def test_a_missing_menu_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the hall menu file"):
        load_menu(tmp_path / "nope.yaml")


def test_check_menu_finds_texts_with_fields_their_reply_does_not_have(tmp_path) -> None:
    path = write(tmp_path, HALL.replace("    survey:", (
        "    texts:\n"
        "      query.balance: 余额{balance}元，{colour}\n"
        "      hall.unknown: 看不懂{\n"
        "      order.confirm: 确认{anything}\n"  # another module's key: checked for syntax only
        "      feedback.nps: 谢谢{score}分\n"
        "    survey:")))  # fmt: skip
    problems = check_menu(path)
    assert len(problems) == 2
    assert "halls[1] (1008688): texts.hall.unknown: not a valid text" in problems[0]
    assert "texts.query.balance: unknown field(s) {colour} (has: balance, plan)" in problems[1]
