"""Sandboxed SMS templates: compile once, validate variables, render with signature and parts.

Templates are Jinja2 in an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with
``StrictUndefined``, no autoescape (SMS is plain text), no loader and no globals. Beyond
the sandbox, compilation refuses anything a text message has no use for: includes and
imports, attributes or keys starting with ``_``, names that are not declared variables.
Rendering validates the values (:mod:`jingxin.content.variables`), puts the tenant's
signature in front, adds the unsubscribe route to marketing, and counts parts with the
one splitter (:mod:`jingxin.content.encoding`).

Rendering is bounded (:mod:`jingxin.content.budget`): loops, calls, every value turned
into text and the output are limited while the template runs, and a template whose
nested loops could run past the budget does not compile. A runaway render raises
:class:`RenderLimitError` (reason ``render_limit``) in milliseconds.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from jingxin.content import budget, filters
from jingxin.content.budget import MAX_OUTPUT_CHARS, MAX_STEPS, RenderLimitError
from jingxin.content.encoding import PartsInfo, count_parts
from jingxin.content.envelope import has_unsubscribe_route, with_signature, with_unsubscribe_route
from jingxin.content.variables import check_declarations, validate_values
from jingxin.errors import TemplateError

Category = Literal["otp", "notification", "marketing"]
CATEGORIES: tuple[str, ...] = ("otp", "notification", "marketing")
MAX_OUTPUT = budget.MAX_TEXT  # characters a single operation may build
__all__ = ["RenderLimitError", "compile_template", "render", "render_body"]

# The built-in filters an SMS needs; the rest (attr, map, xmlattr, format...) are dropped.
_BUILTIN_FILTERS = (
    "abs",
    "capitalize",
    "default",
    "first",
    "float",
    "int",
    "join",
    "last",
    "length",
    "lower",
    "replace",
    "round",
    "string",
    "title",
    "trim",
    "truncate",
    "upper",
)
_FORBIDDEN_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


class _SmsEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, plus: no private attributes at all, and every operation that can
    build a large value (``* ** + %``, calls, ``format``) sized before it runs; every call
    spends a step of the render budget."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return not attr.startswith("_") and super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > 100:
                raise RenderLimitError("exponent too large")
            if isinstance(left, int) and left.bit_length() * abs(int(right)) > 100_000:
                raise RenderLimitError("the power would be a huge number")
            return operator.pow(left, right)
        if operator_ == "%":
            if isinstance(left, str):
                budget.check_format(left)
                budget.check_text(right, "a % format")
            return operator.mod(left, right)
        result_size = _repeat_size(left, right) if operator_ == "*" else _sum_size(left, right)
        if result_size > MAX_OUTPUT:
            raise RenderLimitError(f"{operator_} would build {result_size:,} items")
        return operator.mul(left, right) if operator_ == "*" else operator.add(left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget.spend()
        _check_str_method(__obj, args)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list | tuple):
            budget.check_text(result, "a call")
        return result

    def wrap_str_format(self, value: Any) -> Any:
        """``str.format`` as the sandbox wraps it, with its widths and values sized first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        pattern = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            budget.check_format(pattern)
            budget.check_text([*args, *kwargs.values()], "a format")
            return wrapped(*args, **kwargs)

        return bounded


def _repeat_size(left: Any, right: Any) -> int:
    if isinstance(left, str | list | tuple) and isinstance(right, int):
        return len(left) * right
    if isinstance(right, str | list | tuple) and isinstance(left, int):
        return len(right) * left
    if isinstance(left, int) and isinstance(right, int):  # digits, not items: 1 per 8 bits
        return (left.bit_length() + right.bit_length()) // 8
    return 0


def _sum_size(left: Any, right: Any) -> int:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        return len(left) + len(right)
    return 0


_PADDING_METHODS = frozenset(["ljust", "rjust", "center", "zfill"])


def _check_str_method(obj: Any, args: tuple[Any, ...]) -> None:
    """Size a ``str`` method's result before it is built (``'x'.ljust(10**9)``)."""
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(obj, "__name__", "")
    if name in _PADDING_METHODS and args and isinstance(args[0], int):
        size = args[0]
    elif name == "expandtabs":
        size = len(owner) * (args[0] if args and isinstance(args[0], int) else 8)
    elif name == "join" and args:
        size = budget.text_size(args[0]) + len(owner) * budget.text_size(args[0]) // 2
    elif name == "replace" and len(args) >= 2 and isinstance(args[1], str):
        old = args[0] if isinstance(args[0], str) else ""
        size = len(owner) + (owner.count(old) if old else len(owner) + 1) * len(args[1])
    else:
        return
    if size > MAX_OUTPUT:
        raise RenderLimitError(f"str.{name} would build {size:,} characters")


# Filters that read a value without turning it into text: they need no size check first.
_READING_FILTERS = frozenset(["length", "first", "last", "default"])


def _bounded_filter(name: str, function: Any) -> Any:
    """``function`` with its value sized before and its result after."""
    passes = getattr(function, "jinja_pass_arg", None)

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value = args[1 if passes is not None else 0] if args else None
        if name not in _READING_FILTERS:
            budget.check_text(value, f"the {name} filter")
        if name == "join" and len(args) > (2 if passes is not None else 1):
            separator = args[2 if passes is not None else 1]
            budget.check_text([value, value] if separator else value, "the join filter")
        result = function(*args, **kwargs)
        if isinstance(result, str | list | tuple):
            budget.check_text(result, f"the {name} filter")
        return result

    return bounded


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` value, before it becomes text."""
    return budget.check_text(value, "an output value")


def _environment() -> _SmsEnvironment:
    env = _SmsEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        loader=None,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        finalize=_finalize,
    )
    env.globals.clear()  # no range, cycler, joiner, namespace, lipsum, dict
    chosen = {name: env.filters[name] for name in _BUILTIN_FILTERS}
    chosen.update(filters.FILTERS)
    env.filters = {name: _bounded_filter(name, f) for name, f in chosen.items()}
    env.filters[budget.LOOP_FILTER] = budget.bounded_loop
    env.filters[budget.TEXT_FILTER] = budget.bounded_text
    env.tests = {name: env.tests[name] for name in ("defined", "number", "string", "none")}
    return env


ENVIRONMENT = _environment()


@dataclass(frozen=True)
class CompiledTemplate:
    """A parsed and checked template body with its declared variables."""

    body: str
    variables: Mapping[str, str]
    template: jinja2.Template = field(repr=False, compare=False)


@dataclass(frozen=True)
class Rendered:
    """A rendered message: its final text, its parts, and why it cannot be sent (if so)."""

    text: str
    parts: PartsInfo
    error: str | None = None

    @property
    def fits(self) -> bool:
        return self.error is None


def _check_tree(tree: nodes.Template, variables: Mapping[str, str], where: str) -> None:
    for node in tree.find_all(_FORBIDDEN_NODES):
        raise TemplateError(f"{where}: line {node.lineno}: include/import/extends are not allowed")
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(key, str) and key.startswith("_"):
            raise TemplateError(f"{where}: line {node.lineno}: access to {key!r} is not allowed")
    for node in tree.find_all(nodes.For):
        if node.recursive:
            raise TemplateError(f"{where}: line {node.lineno}: recursive loops are not allowed")
    worst, line = budget.worst_case_iterations(tree)
    if worst > MAX_STEPS:
        raise RenderLimitError(
            f"{where}: line {line}: nested loops could run {worst:,} times (at most "
            f"{MAX_STEPS:,}; a variable is taken as {budget.ASSUMED_VARIABLE_LENGTH} "
            "characters)")
    undeclared = meta.find_undeclared_variables(tree) - set(variables)
    if undeclared:
        name_nodes = [n for n in tree.find_all(nodes.Name) if n.name in undeclared]
        first = min(name_nodes, key=lambda n: n.lineno)
        raise TemplateError(
            f"{where}: line {first.lineno}: undeclared variable {first.name!r} "
            f"(declare it in variables; declared: {', '.join(sorted(variables)) or 'none'})"
        )


def compile_template(
    body: str, variables: Mapping[str, str], *, where: str = "template"
) -> CompiledTemplate:
    """Parse and check ``body``; a syntax error, unsafe construct or undeclared name raises
    :class:`TemplateError` naming ``where`` and the line."""
    return _compile_cached(body, tuple(sorted(variables.items())), where)


@lru_cache(maxsize=512)
def _compile_cached(
    body: str, declared: tuple[tuple[str, str], ...], where: str
) -> CompiledTemplate:
    variables = dict(declared)
    check_declarations(variables, where=where)
    try:
        tree = ENVIRONMENT.parse(body)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: line {exc.lineno}: {exc.message}") from exc
    try:
        _check_tree(tree, variables, where)
        template = ENVIRONMENT.from_string(budget.bound_tree(tree))
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter, found at compile time
        raise TemplateError(f"{where}: line {exc.lineno}: {exc.message}") from exc
    return CompiledTemplate(body=body, variables=variables, template=template)


def render_body(
    compiled: CompiledTemplate, values: Mapping[str, object], *, where: str = "template"
) -> str:
    """The body alone with ``values`` filled in (validated first); no signature."""
    typed = validate_values(compiled.variables, values, where=where)
    token = budget.start()
    try:
        return _bounded_output(compiled.template, typed).strip()
    except RenderLimitError as exc:
        raise RenderLimitError(f"{where}: render limit: {exc}") from None
    except (RecursionError, MemoryError) as exc:
        raise RenderLimitError(f"{where}: render limit: {type(exc).__name__}") from None
    except SecurityError as exc:
        raise TemplateError(f"{where}: unsafe template: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{where}: cannot render: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"{where}: cannot render: {type(exc).__name__}: {exc}") from exc
    finally:
        budget.finish(token)


def _bounded_output(template: jinja2.Template, values: Mapping[str, Any]) -> str:
    """The rendered text, counted as it streams: a render stops at the output limit."""
    pieces: list[str] = []
    size = 0
    for piece in template.generate(**values):
        size += len(piece)
        if size > MAX_OUTPUT_CHARS:
            raise RenderLimitError(f"the output passes {MAX_OUTPUT_CHARS:,} characters")
        pieces.append(piece)
    return "".join(pieces)


def compose(
    body: str,
    *,
    category: str,
    signature: str | None,
    unsubscribe_text: str,
    unsubscribe: Literal["append", "require"] = "append",
    where: str = "template",
) -> str:
    """Signature in front; for marketing, the unsubscribe route appended or required."""
    text = body
    if category == "marketing" and not has_unsubscribe_route(text, unsubscribe_text):
        if unsubscribe == "require":
            raise TemplateError(
                f"{where}: a marketing message must carry an unsubscribe route "
                f"such as {unsubscribe_text!r}"
            )
        text = with_unsubscribe_route(text, unsubscribe_text)
    return with_signature(text, signature) if signature else text


def render(
    compiled: CompiledTemplate,
    values: Mapping[str, object],
    *,
    category: str,
    signature: str | None,
    unsubscribe_text: str = "回T退订",
    max_parts: int = 6,
    unsubscribe: Literal["append", "require"] = "append",
    where: str = "template",
) -> Rendered:
    """The final message text and its parts; ``error`` says when it needs too many parts."""
    if category not in CATEGORIES:
        raise TemplateError(f"{where}: unknown category {category!r} (use {', '.join(CATEGORIES)})")
    body = render_body(compiled, values, where=where)
    text = compose(
        body,
        category=category,
        signature=signature,
        unsubscribe_text=unsubscribe_text,
        unsubscribe=unsubscribe,
        where=where,
    )
    parts = count_parts(text)
    error = None
    if parts.parts > max_parts:
        error = (
            f"{where}: the message needs {parts.parts} parts ({parts.units} {parts.encoding} "
            f"units); at most {max_parts} are allowed"
        )
    return Rendered(text=text, parts=parts, error=error)
