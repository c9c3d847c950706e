"""Sandboxed SMS templates: compile once, validate variables, render with signature and parts.

Templates are Jinja2 in an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with
``StrictUndefined``, no autoescape (SMS is plain text), no loader and no globals. Beyond
the sandbox, compilation refuses anything a text message has no use for: includes and
imports, attributes or keys starting with ``_``, names that are not declared variables.
Rendering validates the values (:mod:`jingxin.content.variables`), puts the tenant's
signature in front, adds the unsubscribe route to marketing, and counts parts with the
one splitter (:mod:`jingxin.content.encoding`).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from jingxin.content import filters
from jingxin.content.encoding import PartsInfo, count_parts
from jingxin.content.envelope import has_unsubscribe_route, with_signature, with_unsubscribe_route
from jingxin.content.variables import check_declarations, validate_values
from jingxin.errors import TemplateError

Category = Literal["otp", "notification", "marketing"]
CATEGORIES: tuple[str, ...] = ("otp", "notification", "marketing")
MAX_OUTPUT = 10_000  # characters a single binary operation may build (a 255-part SMS is less)

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
    """The sandbox, plus: no private attributes at all, and bounded ``*`` / ``**``."""

    intercepted_binops = frozenset(["*", "**"])

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return not attr.startswith("_") and super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > 100:
                raise SecurityError("exponent too large")
            return operator.pow(left, right)
        result_size = _repeat_size(left, right)
        if result_size > MAX_OUTPUT:
            raise SecurityError(f"repetition would build {result_size} items")
        return operator.mul(left, right)


def _repeat_size(left: Any, right: Any) -> int:
    if isinstance(left, str | list | tuple) and isinstance(right, int):
        return len(left) * right
    if isinstance(right, str | list | tuple) and isinstance(left, int):
        return len(right) * left
    return 0


def _environment() -> _SmsEnvironment:
    env = _SmsEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        loader=None,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.globals.clear()  # no range, cycler, joiner, namespace, lipsum, dict
    env.filters = {name: env.filters[name] for name in _BUILTIN_FILTERS}
    env.filters.update(filters.FILTERS)
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
        template = ENVIRONMENT.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter, found at compile time
        raise TemplateError(f"{where}: line {exc.lineno}: {exc.message}") from exc
    return CompiledTemplate(body=body, variables=variables, template=template)


def render_body(
    compiled: CompiledTemplate, values: Mapping[str, object], *, where: str = "template"
) -> str:
    """The body alone with ``values`` filled in (validated first); no signature."""
    typed = validate_values(compiled.variables, values, where=where)
    try:
        return compiled.template.render(**typed).strip()
    except SecurityError as exc:
        raise TemplateError(f"{where}: unsafe template: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{where}: cannot render: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"{where}: cannot render: {type(exc).__name__}: {exc}") from exc


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
