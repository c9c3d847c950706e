"""Template documents and the starter library."""

from __future__ import annotations

from pathlib import Path

import pytest

from jingxin.content.lexicon import build_lexicon
from jingxin.content.library import join_lines, load_documents, starter_library
from jingxin.content.review import Reviewer
from jingxin.content.templates import render
from jingxin.errors import TemplateError

LIBRARY = starter_library()
REVIEWER = Reviewer(lexicon=build_lexicon())


def test_library_covers_the_briefed_scenarios() -> None:
    codes = {d.code for d in LIBRARY}
    wanted = {
        "care.anniversary",
        "care.birthday",
        "care.plan_renewal",
        "care.spring_festival",
        "care.mid_autumn",
        "care.dragon_boat",
        "care.roaming_domestic",
        "care.roaming_international",
        "care.usage_near",
        "care.usage_over",
        "order.confirmed",
        "logistics.shipped",
        "account.change",
        "appointment.reminder",
        "otp.login",
    }
    assert wanted <= codes


@pytest.mark.parametrize("document", LIBRARY, ids=lambda d: d.code)
def test_every_library_template_renders_fits_and_passes_review(document) -> None:
    # Given a starter template and its sample values
    out = render(
        document.compile(),
        document.sample,
        category=document.category,
        signature="中国移动",
        max_parts=6,
    )
    # Then it fits the default budget and the default review does not block it
    assert out.fits, out.error
    assert "{{" not in out.text and "  " not in out.text
    assert REVIEWER.review(out.text, category=document.category).verdict != "block"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("第一行\n  第二行", "第一行第二行"),
        ("Your code\n  is {{ c }}", "Your code is {{ c }}"),
        ("您好{{ n }}\n，欢迎", "您好{{ n }}，欢迎"),
        ("\n\n  单行  \n", "单行"),
    ],
)
def test_join_lines(body: str, expected: str) -> None:
    assert join_lines(body) == expected


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("templates:\n  - code: a\n    category: otp\n    body: [unclosed\n", ".yaml", "line"),
        ('{"code": "a", "category": "otp", "body": }', ".json", "line 1: invalid JSON"),
        ("code: a\ncategory: spam\nbody: x\n", ".yaml", "field 'category'"),
        ("code: a\ncategory: otp\n", ".yaml", "field 'body'"),
        ("code: a\ncategory: otp\nbody: x\ncolour: red\n", ".yaml", "field 'colour'"),
        ("code: a\ncategory: otp\nbody: '{{ x }}'\n", ".yaml", "undeclared variable 'x'"),
        ("- 1\n- 2\n", ".yaml", "expected a template mapping"),
        ('code: a\ncategory: otp\nbody: "{% if %}"\n', ".yaml", "a: line 1"),
    ],
)
def test_bad_documents_name_what_is_wrong(
    tmp_path: Path, content: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"t{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TemplateError, match=message):
        load_documents(path)


def test_unreadable_document(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read"):
        load_documents(tmp_path / "missing.yaml")


def test_json_document_with_several_templates(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(
        '{"templates": [{"code": "a", "category": "otp", "body": "码{{ c }}",'
        ' "variables": {"c": "code"}}, {"code": "b", "category": "notification",'
        ' "body": "好"}]}',
        encoding="utf-8",
    )
    assert [d.code for d in load_documents(path)] == ["a", "b"]
