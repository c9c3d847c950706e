"""Bounded rendering: a runaway template fails its one recipient with RenderLimitError
(reason render_limit) in milliseconds and small memory; the static gate refuses the
obvious cases before approval."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from jingxin.content import budget
from jingxin.content.templates import RenderLimitError, compile_template, render, render_body
from jingxin.errors import TemplateError

EXAMPLE = ("{% set x = name * 100 %}{% for a in x %}{% for b in x %}{{ a }}{{ b }}"
           "{% endfor %}{% endfor %}")


def _timed_failure(body: str, values: dict, **declared: str) -> tuple[float, int, str]:
    """Seconds (best of two, without tracing) and peak traced bytes of a failing render."""
    compiled = compile_template(body, declared or {"name": "str"})
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        with pytest.raises(RenderLimitError) as caught:
            render_body(compiled, values, where="row 7")
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()
    try:
        with pytest.raises(RenderLimitError):
            render_body(compiled, values, where="row 7")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return min(seconds), peak, str(caught.value)


def test_the_static_gate_refuses_the_nested_loop_over_a_repetition():
    with pytest.raises(RenderLimitError, match=r"line 1: nested loops could run 100,000,000"):
        compile_template(EXAMPLE, {"name": "str"})


@pytest.fixture
def no_static_gate(monkeypatch):
    """The static worst-case gate switched off (and compiled templates forgotten on both
    sides), so only the runtime bound stands."""
    from jingxin.content import templates

    templates._compile_cached.cache_clear()
    monkeypatch.setattr(budget, "worst_case_iterations", lambda tree: (0, 0))
    yield
    monkeypatch.undo()
    templates._compile_cached.cache_clear()


def test_the_runtime_bound_stops_the_example_in_milliseconds(no_static_gate):
    # Given the static gate switched off, so only the runtime bound stands
    # When the example renders for one recipient
    seconds, peak, message = _timed_failure(EXAMPLE, {"name": "王小明"})
    # Then it fails that recipient quickly, with little memory, saying why
    assert seconds < 0.05 and peak < 5_000_000
    assert message.startswith("row 7: render limit: more than 10,000 loop iterations")
    assert RenderLimitError.code == "render_limit" and issubclass(RenderLimitError, TemplateError)


RUNAWAYS = [
    # loops the static gate lets through (variables assumed short) but a long value runs away
    ("{% for a in name %}{% for b in name %}.{% endfor %}{% endfor %}", "loop iterations"),
    ("{% for a in name.split('a') %}{% for b in name %}{% endfor %}{% endfor %}", "iterations"),
    ("{{ ([name * 10] * 1000) | join }}", "join filter"),
    ("{{ ([name * 10] * 1000) | upper }}", "upper filter"),
    ("{{ [name * 10] * 1000 }}", "output value"),
    ("{{ name.ljust(1000000000) }}", "str.ljust"),
    ("{{ name.replace('', name * 10) }}", "str.replace"),
    ("{{ '%1000000000d' % 1 }}", "format width"),
    ("{{ '{:>999999999}'.format(name) }}", "format width"),
    ("{% set a = name * 10 %}{% set b = a ~ a %}{% set c = b ~ b %}{{ c }}", "concatenation"),
    ("{% set a = name * 10 %}{% set b = a + a %}{% set c = b + b %}{{ c }}", "+ would build"),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "render limit"),
    ("{% macro m(n) %}{{ m(n) }}{{ m(n) }}{% endmacro %}{{ m(1) }}", "render limit"),
    ("{{ ((9 ** 100) ** 100) ** 100 }}", "huge number"),
]


@pytest.mark.parametrize(("body", "reason"), RUNAWAYS)
def test_each_way_to_run_away_fails_fast(body, reason):
    seconds, peak, message = _timed_failure(body, {"name": "a" * 1000})
    assert reason in message
    assert seconds < 0.05 and peak < 20_000_000


def test_ordinary_loops_and_text_still_render():
    compiled = compile_template(
        "{% for c in code %}{{ c }} {% endfor %}|{{ name ~ '先生' }}|{{ name.upper() }}",
        {"code": "str", "name": "str"})
    assert render_body(compiled, {"code": "123", "name": "li"}) == "1 2 3 |li先生|LI"


def test_recursive_loops_are_refused():
    with pytest.raises(TemplateError, match="recursive loops are not allowed"):
        compile_template("{% for a in name recursive %}{{ loop(a) }}{% endfor %}",
                         {"name": "str"})


def test_a_runaway_row_fails_alone_and_the_next_render_has_a_fresh_budget():
    # Given a template that runs away only on a long value (the campaign path catches
    # TemplateError per row and counts it as render_error: dispatch/delivery_table.py _one)
    compiled = compile_template(
        "{% for a in name %}{% for b in name %}.{% endfor %}{% endfor %}您好", {"name": "str"})
    # When a long row renders, then a short one
    with pytest.raises(TemplateError, match="render limit"):
        render(compiled, {"name": "a" * 500}, category="notification", signature="精信")
    result = render(compiled, {"name": "ab"}, category="notification", signature="精信")
    # Then only the first failed: the budget is per render
    assert result.text == "【精信】....您好"


def test_review_and_approval_refuse_the_runaway_template(monkeypatch):
    # Given the example stored as a draft while no static gate existed
    from jingxin.content import catalog
    from jingxin.content.lexicon import build_lexicon
    from jingxin.content.library import TemplateDocument
    from jingxin.content.review import Reviewer
    from jingxin.data.store import open_store
    from jingxin.data.store.models import Base
    from jingxin.data.store.tenants import ensure_default_tenant

    document = TemplateDocument(code="care.loop", category="notification", body=EXAMPLE,
                                variables={"name": "str"})
    store = open_store("sqlite://")
    Base.metadata.create_all(store.engine)
    try:
        with store.transaction() as session:
            ensure_default_tenant(session)
            # When it is added / Then it is refused naming the worst case
            with pytest.raises(RenderLimitError, match="nested loops could run"):
                catalog.add_template(session, document=document)
            with monkeypatch.context() as patched:
                patched.setattr(budget, "worst_case_iterations", lambda tree: (0, 0))
                from jingxin.content import templates
                templates._compile_cached.cache_clear()
                template = catalog.add_template(session, document=document)
            templates._compile_cached.cache_clear()
            # When it is submitted or approved with the gate back / Then refused
            with pytest.raises(RenderLimitError):
                catalog.submit_template(session, template_id=template.id,
                                        reviewer=Reviewer(lexicon=build_lexicon()))
            template.status = "submitted"  # as if submitted before the gate existed
            with pytest.raises(RenderLimitError):
                catalog.approve_template(session, template_id=template.id, reviewer="王审核")
    finally:
        store.dispose()
