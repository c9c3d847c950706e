"""Sandboxed templates: compile checks, typed variables, filters, signature, unsubscribe, parts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from jingxin.content import filters
from jingxin.content.templates import compile_template, compose, render, render_body
from jingxin.errors import TemplateError

VARS = {"name": "str", "fee": "decimal", "mb": "int", "due": "date"}
BODY = "{{ name }}，本月流量{{ mb|data_size }}，费用{{ fee|yuan }}，{{ due|month_day }}到期。"
GOOD = {"name": "张先生", "fee": "58.5", "mb": "1536", "due": "2026-12-01"}


def test_render_fills_typed_values_and_counts_parts() -> None:
    # Given a template and string values (as the CLI passes them)
    compiled = compile_template(BODY, VARS)
    # When rendered for a notification under a signature
    out = render(compiled, GOOD, category="notification", signature="中国移动")
    # Then values are converted, the signature leads, and parts are counted
    assert out.text == "【中国移动】张先生，本月流量1.5GB，费用58.50元，12月1日到期。"
    assert out.parts.encoding == "ucs2" and out.parts.parts == 1 and out.fits


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", "not allowed"),
        ("{{ cycler.__init__.__globals__ }}", "not allowed"),
        ("{{ name.__class__ }}", "not allowed"),
        ("{{ name['__class__'] }}", "not allowed"),
        ("{{ name._secret }}", "not allowed"),
        ("{{ name|attr('__class__') }}", "No filter named 'attr'"),
        ("{% include 'x.txt' %}", "not allowed"),
        ("{% import 'x' as y %}", "not allowed"),
        ("{{ range(10) }}", "undeclared variable 'range'"),
        ("{{ lipsum() }}", "undeclared variable 'lipsum'"),
        ("{{ name|format('x') }}", "No filter named 'format'"),
    ],
)
def test_sandbox_escapes_are_refused_at_compile(body: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        compile_template(body, {"name": "str"})


@pytest.mark.parametrize(
    "body",
    ["{{ name.upper.__self__ }}", "{{ name.encode('utf-8').hex.__call__ }}"],
)
def test_sandbox_refuses_internals_even_when_reached_indirectly(body: str) -> None:
    with pytest.raises(TemplateError):
        render_body(compile_template(body, {"name": "str"}), {"name": "x"})


def test_sandbox_bounds_repetition() -> None:
    compiled = compile_template("{{ name * 100000 }}", {"name": "str"})
    with pytest.raises(TemplateError, match="render limit"):
        render_body(compiled, {"name": "ab"})


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(TemplateError, match=r"care\.x: line 3:"):
        compile_template("第一行\n第二行\n{{ name }", {"name": "str"}, where="care.x")


def test_undeclared_variable_names_variable_and_line() -> None:
    with pytest.raises(TemplateError, match=r"line 2: undeclared variable 'amount'"):
        compile_template("您好{{ name }}\n金额{{ amount }}", {"name": "str"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": "x", "fee": "1", "mb": "1"}, "missing variable 'due'"),
        ({**GOOD, "extra": "1"}, "unknown variable 'extra'"),
        ({**GOOD, "mb": "lots"}, "variable 'mb' \\(int\\)"),
        ({**GOOD, "due": "tomorrow"}, "variable 'due' \\(date\\)"),
        ({**GOOD, "fee": "abc"}, "variable 'fee' \\(decimal\\)"),
    ],
)
def test_bad_values_name_the_variable(values: dict, message: str) -> None:
    compiled = compile_template(BODY, VARS)
    with pytest.raises(TemplateError, match=message):
        render_body(compiled, values)


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("url", "https://jx.cn/a", "javascript:alert(1)"),
        ("msisdn", "+8613800138000", "12345"),
        ("code", "482913", "48 29"),
        ("float", "0.5", "half"),
    ],
)
def test_special_variable_types(kind: str, good: str, bad: str) -> None:
    compiled = compile_template("{{ v }}", {"v": kind})
    assert render_body(compiled, {"v": good})
    with pytest.raises(TemplateError, match="variable 'v'"):
        render_body(compiled, {"v": bad})


def test_unknown_variable_type_is_refused() -> None:
    with pytest.raises(TemplateError, match="unknown type 'money'"):
        compile_template("{{ v }}", {"v": "money"})


def test_numbers_coerce_to_str_variables() -> None:
    assert render_body(compile_template("{{ v }}", {"v": "str"}), {"v": 12}) == "12"


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (filters.yuan, Decimal("58"), "58元"),
        (filters.yuan, 12.5, "12.50元"),
        (filters.yuan, "0.125", "0.13元"),
        (filters.signed_yuan, 5, "多5元"),
        (filters.signed_yuan, "-3.2", "少3.20元"),
        (filters.signed_yuan, 0, "持平"),
        (filters.mask, "13812345678", "138****5678"),
        (filters.mask, "12345", "1***5"),
        (filters.tail, "6222021234567890", "7890"),
        (filters.cn_date, date(2026, 1, 5), "2026年1月5日"),
        (filters.month_day, "2026-11-23", "11月23日"),
        (filters.percent, 0.125, "13%"),
        (filters.data_size, 800, "800MB"),
        (filters.data_size, 1536, "1.5GB"),
        (filters.data_size, 61440, "60GB"),
    ],
)
def test_filters(fn, value, expected: str) -> None:
    assert fn(value) == expected


@pytest.mark.parametrize(
    ("category", "body", "expected"),
    [
        ("marketing", "送您2GB流量。", "【精信】送您2GB流量。回T退订"),
        ("marketing", "送您2GB流量", "【精信】送您2GB流量，回T退订"),
        ("marketing", "详见 https://jx.cn/a", "【精信】详见 https://jx.cn/a 回T退订"),
        ("marketing", "送您流量，退订回T", "【精信】送您流量，退订回T"),
        ("notification", "您的验证码", "【精信】您的验证码"),
        ("notification", "【精信】已有签名", "【精信】已有签名"),
    ],
)
def test_compose_signature_and_unsubscribe(category: str, body: str, expected: str) -> None:
    assert (
        compose(body, category=category, signature="精信", unsubscribe_text="回T退订") == expected
    )


def test_marketing_without_route_refused_in_require_mode() -> None:
    with pytest.raises(TemplateError, match="unsubscribe"):
        compose(
            "买一送一",
            category="marketing",
            signature="精信",
            unsubscribe_text="回T退订",
            unsubscribe="require",
        )


def test_too_many_parts_is_reported_not_raised() -> None:
    # Given a body that renders to ~300 Chinese characters and a budget of 3 parts
    compiled = compile_template("{{ s }}", {"s": "str"})
    out = render(compiled, {"s": "长" * 300}, category="otp", signature="精信", max_parts=3)
    # Then the result carries an error naming the parts needed
    assert not out.fits
    assert "needs 5 parts" in (out.error or "")


def test_unknown_category_refused() -> None:
    with pytest.raises(TemplateError, match="unknown category"):
        render(compile_template("x", {}), {}, category="spam", signature=None)
