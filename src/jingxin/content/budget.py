"""The render budget: how much work one render of a template may do, enforced WHILE it
renders, plus the static worst case that review and approval check first.

A template is data a tenant writes; a loop over a repeated string nested in another
(``{% set x = name * 100 %}{% for a in x %}{% for b in x %}``) would take seconds and a
gigabyte for one recipient. The static gate (:func:`worst_case_iterations`) refuses such
a template before it is approved; the runtime bound is the guarantee, whatever the static
estimate missed:

- every loop iteration and every call (method, macro) spends one step of a per-render
  budget (:data:`MAX_STEPS`); loops are wrapped by rewriting the parsed tree
  (:func:`bound_tree`), calls are counted by the sandbox;
- every value that becomes text (``{{ }}``, ``~``, filters, ``%``, ``format``, string
  methods) is sized BEFORE it is built (:func:`text_size` stops counting at the limit), so
  no single operation can allocate more than about :data:`MAX_TEXT` characters;
- the output is counted as it streams (:data:`MAX_OUTPUT_CHARS`).

Running out raises :class:`RenderLimitError` (reason code ``render_limit``) within
milliseconds; the caller fails that one recipient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes

from jingxin.errors import TemplateError

MAX_STEPS = 10_000  # loop iterations + calls in one render
MAX_TEXT = 10_000  # characters one value may hold (a 6-part SMS is < 1,000)
MAX_OUTPUT_CHARS = 40_000  # characters one render may output (255 GSM-7 parts < 40,000)
ASSUMED_VARIABLE_LENGTH = 100  # what the static gate assumes a variable's value holds
LOOP_FILTER = "jx_bounded_loop"
TEXT_FILTER = "jx_bounded_text"
_WIDTH = re.compile(r"%[-+ #0]*(\d+)|\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")


class RenderLimitError(TemplateError):
    """One render did more work or built more text than a text message can need."""

    code = "render_limit"


@dataclass(slots=True)
class Budget:
    """The steps left for the render in progress."""

    steps: int = MAX_STEPS

    def spend(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise RenderLimitError(f"more than {MAX_STEPS:,} loop iterations or calls")


_CURRENT: ContextVar[Budget | None] = ContextVar("jingxin_render_budget", default=None)


def start() -> Any:
    """Give the render about to run a fresh budget; pass the token to :func:`finish`."""
    return _CURRENT.set(Budget())


def finish(token: Any) -> None:
    _CURRENT.reset(token)


def spend() -> None:
    budget = _CURRENT.get()
    if budget is not None:
        budget.spend()


def text_size(value: Any, limit: int = MAX_TEXT) -> int:
    """About how many characters ``str(value)`` holds, counting no further than ``limit``
    (a list of a million strings is not walked to the end)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool | int | float) or value is None:
        return 24
    if isinstance(value, Mapping):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple | set | frozenset):
        total = 2
        for item in value:
            total += text_size(item, limit - total) + 2
            if total > limit:
                return total
        return total
    return 64  # dates, decimals, undefined: short


def check_text(value: Any, what: str) -> Any:
    size = text_size(value)
    if size > MAX_TEXT:
        raise RenderLimitError(f"{what} would build over {MAX_TEXT:,} characters")
    return value


def check_format(template: str) -> None:
    """Refuse a ``%`` or ``str.format`` pattern that pads to a huge width."""
    for found in _WIDTH.finditer(template):
        width = found.group(1) or found.group(2)
        if width and int(width) > MAX_TEXT:
            raise RenderLimitError(f"a format width of {width} is over {MAX_TEXT:,}")


def bounded_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """What a ``{% for %}`` iterates: the same items, one budget step each."""
    budget = _CURRENT.get() or Budget()
    for item in iterable:
        budget.spend()
        yield item


def bounded_text(value: Any) -> Any:
    return check_text(value, "a ~ concatenation")


def bound_tree(tree: nodes.Template) -> nodes.Template:
    """Rewrite ``tree`` so that every loop spends the budget and every ``~`` is sized."""
    for loop in tree.find_all(nodes.For):
        loop.iter = _filter(loop.iter, LOOP_FILTER)
    for concat in list(tree.find_all(nodes.Concat)):
        concat.nodes = [_filter(part, TEXT_FILTER) for part in concat.nodes]
    return tree


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def worst_case_iterations(tree: nodes.Template) -> tuple[int, int]:
    """The most loop iterations a chain of nested loops may run (and its line), assuming
    a variable holds :data:`ASSUMED_VARIABLE_LENGTH` characters."""
    assigned = {
        node.target.name: node.node
        for node in tree.find_all(nodes.Assign) if isinstance(node.target, nodes.Name)
    }
    worst, line = 0, 0
    for loop in tree.find_all(nodes.For):
        total = _chain(loop, assigned)
        if total > worst:
            worst, line = total, loop.lineno
    return worst, line


def _chain(loop: nodes.For, assigned: dict[str, nodes.Expr]) -> int:
    own = _length(loop.iter, assigned, depth=0)
    inner = [_chain(child, assigned) for child in _direct_loops(loop)]
    return own * max(inner, default=1)


def _direct_loops(loop: nodes.For) -> list[nodes.For]:
    found: list[nodes.For] = []
    stack = [*loop.body, *loop.else_]
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.For):
            found.append(node)
        else:
            stack.extend(node.iter_child_nodes())
    return found


def _length(expr: nodes.Node, assigned: dict[str, nodes.Expr], *, depth: int) -> int:
    """How many items ``expr`` may hold (strings: characters)."""
    if depth > 20:
        return ASSUMED_VARIABLE_LENGTH
    if isinstance(expr, nodes.List | nodes.Tuple):
        return len(expr.items)
    if isinstance(expr, nodes.Const):
        value = expr.value
        return len(value) if isinstance(value, str | list | tuple) else abs(int(value or 0))
    if isinstance(expr, nodes.Name) and expr.name in assigned:
        return _length(assigned[expr.name], assigned, depth=depth + 1)
    if isinstance(expr, nodes.Mul | nodes.Pow):
        return _length(expr.left, assigned, depth=depth + 1) * \
            _length(expr.right, assigned, depth=depth + 1)
    if isinstance(expr, nodes.Add | nodes.Concat):
        parts = [expr.left, expr.right] if isinstance(expr, nodes.Add) else expr.nodes
        return sum(_length(p, assigned, depth=depth + 1) for p in parts)
    if isinstance(expr, nodes.Filter) and expr.node is not None:
        return _length(expr.node, assigned, depth=depth + 1)
    return ASSUMED_VARIABLE_LENGTH
