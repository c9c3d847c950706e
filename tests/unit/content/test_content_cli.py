"""``jingxin template`` and ``jingxin review`` through the CLI (CliRunner)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.errors import InputError, TemplateError

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JINGXIN_CONFIG", os.devnull)
    monkeypatch.setenv("JINGXIN_STORE__URL", f"sqlite:///{tmp_path / 'jx.db'}")
    return {}


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.mark.parametrize(
    ("args", "code", "shown"),
    [
        (["review", "【精信】您的验证码为482913。"], 0, "verdict: pass"),
        (["review", "【精信】有事加微信"], 0, "verdict: needs-review"),
        (["review", "【精信】有事加微信", "--strict"], 1, "[review] lexicon"),
        (["review", "【精信】兼职刷单日结"], 1, "verdict: block"),
        (["review", "送流量", "--category", "marketing"], 1, "missing_unsubscribe"),
        (["review", "您好", "--no-signature"], 0, "verdict: pass"),
    ],
)
def test_review_exit_codes(env, args: list[str], code: int, shown: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert shown in result.output


def test_review_json_and_extra_lexicon(env, tmp_path: Path) -> None:
    words = tmp_path / "mine.txt"
    words.write_text("# severity: block\n秘密通道\n", encoding="utf-8")
    result = runner.invoke(
        app, ["review", "【精信】走秘密 通道", "--lexicon", str(words), "--json"]
    )
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["verdict"] == "block"
    assert data["reasons"][0]["span"] == [5, 10] and data["reasons"][0]["category"] == "mine"


def test_review_unreadable_lexicon_is_an_input_error(env, tmp_path: Path) -> None:
    result = runner.invoke(app, ["review", "x", "--lexicon", str(tmp_path / "nope.txt")])
    assert isinstance(result.exception, InputError)
    assert "cannot read the lexicon file" in str(result.exception)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["review"], "exactly one of"),
        (["review", "x", "--template", "1"], "exactly one of"),
        (["review", "x", "--category", "spam"], "--category 'spam'"),
    ],
)
def test_review_bad_arguments(env, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert isinstance(result.exception, InputError) and message in str(result.exception)


def test_review_card(env, tmp_path: Path) -> None:
    card = tmp_path / "card.json"
    card.write_text(
        json.dumps(
            {
                "brand": {"name": "中国移动", "logo": "https://jx.cn/l.png"},
                "title": "账单提醒",
                "body": "您11月话费58元。",
                "buttons": [{"label": "查询", "action": "reply", "value": "1"}],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    output = _ok(["review", "--card", str(card)])
    assert "回复1查询" in output and "verdict: pass" in output


def test_template_lifecycle_through_the_cli(env, tmp_path: Path) -> None:
    # Given a template file
    doc = tmp_path / "t.yaml"
    doc.write_text(
        "code: hello\ncategory: marketing\nvariables: {name: str}\n"
        "body: |-\n  {{ name }}，送您\n  2GB流量。\n",
        encoding="utf-8",
    )
    # When added, submitted and approved
    assert "hello" in _ok(["template", "add", str(doc)])
    assert "submitted" in _ok(["template", "submit", "1"])
    assert "approved" in _ok(["template", "approve", "1", "--reviewer", "王审核"])
    # Then it lists, shows and renders with the parts count
    assert "approved" in _ok(["template", "list"])
    assert "{{ name }}，送您2GB流量。" in _ok(["template", "show", "1"])
    output = _ok(["template", "render", "1", "--var", "name=李女士"])
    assert "【中国移动】李女士，送您2GB流量。回T退订" in output and "1 part(s)" in output
    assert "verdict: pass" in _ok(["review", "--template", "1"])
    # And archiving it is final
    assert "archived" in _ok(["template", "archive", "1"])
    result = runner.invoke(app, ["template", "archive", "1"])
    assert isinstance(result.exception, TemplateError)


def test_reject_and_withdraw(env, tmp_path: Path) -> None:
    doc = tmp_path / "t.json"
    doc.write_text(
        '{"templates": [{"code": "a", "category": "otp", "body": "码{{ c }}",'
        ' "variables": {"c": "code"}}]}',
        encoding="utf-8",
    )
    _ok(["template", "add", str(doc)])
    _ok(["template", "submit", "1"])
    assert "draft" in _ok(["template", "withdraw", "1"])
    _ok(["template", "submit", "1"])
    assert "rejected" in _ok(["template", "reject", "1", "--reviewer", "r", "--reason", "太短"])


def test_seed_library_and_sample_preview_with_card(env, tmp_path: Path) -> None:
    output = _ok(["template", "seed-library", "--approve-as", "seed"])
    assert "template(s) added" in output
    listing = _ok(["template", "list", "--code", "care.usage_near"])
    template_id = listing.splitlines()[1].split()[0]
    card = tmp_path / "c.yaml"
    card.write_text(
        "brand: {name: 中国移动, logo: 'https://jx.cn/l.png'}\ntitle: 流量提醒\n"
        "body: 剩余3GB\nbuttons: [{label: 订购, action: reply, value: JY20}]\n",
        encoding="utf-8",
    )
    output = _ok(["template", "render", template_id, "--sample", "--card", str(card)])
    assert "吴先生" in output and "回复JY20订购" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["template", "render", "1", "--var", "name"], "expected NAME=VALUE"),
        (["template", "render", "1", "--var", "nobody=1"], "unknown variable 'nobody'"),
        (["template", "render", "1"], "missing variable 'name'"),
        (["template", "show", "42"], "no template with id 42"),
    ],
)
def test_bad_render_input(env, tmp_path: Path, args: list[str], message: str) -> None:
    doc = tmp_path / "t.yaml"
    doc.write_text(
        "code: hi\ncategory: otp\nvariables: {name: str}\nbody: '{{ name }}'\n", encoding="utf-8"
    )
    _ok(["template", "add", str(doc)])
    result = runner.invoke(app, args)
    assert result.exception is not None and message in str(result.exception)


def test_render_too_long_for_max_parts(env, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("JINGXIN_CONTENT__MAX_PARTS", "1")
    doc = tmp_path / "t.yaml"
    doc.write_text(
        "code: hi\ncategory: otp\nvariables: {s: str}\nbody: '{{ s }}'\n", encoding="utf-8"
    )
    _ok(["template", "add", str(doc)])
    result = runner.invoke(app, ["template", "render", "1", "--var", "s=" + "长" * 100])
    assert isinstance(result.exception, TemplateError) or "parts" in str(result.exception)
    assert "at most 1 are allowed" in str(result.exception)
