"""Short links in the delivery entry's bulk form (:mod:`jingxin.dispatch.delivery_table`).

A chunk renders each distinct tuple of values once (:func:`deliver_table`'s ``_render``);
a per-message short link must not break that. The short URL has a fixed length
(``https://<domain>/`` and :data:`~jingxin.analytics.links.TOKEN_LENGTH` base62
characters), so a row is rendered with a :class:`LinkPlan`'s placeholder URL of the same
length - same text length, same encoding (its characters are GSM 7-bit basic ones, as a
token's are), hence the same parts - and each admitted row's own token is spliced in
afterwards, in Arrow (:func:`splice`): no render, no Python string per row.

The placeholder is random per plan (10 hex digits), so no template or variable value can
hold it by accident or on purpose.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from jingxin.analytics.links import TOKEN_LENGTH, check_target, short_url, token_array
from jingxin.dispatch.deliver import LINK_MARK, LINK_VARIABLE
from jingxin.errors import InputError


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """A bulk call's short links: the domain, the secret, and the placeholder token."""

    domain: str
    secret: str = field(repr=False)  # never in a log line
    placeholder: str = ""

    @classmethod
    def make(cls, links: Callable[[], tuple[str, str]]) -> LinkPlan:
        """A plan from ``links()`` (the delivery context's checked domain and secret)."""
        domain, secret = links()
        return cls(domain, secret, secrets.token_hex(TOKEN_LENGTH // 2))

    @property
    def placeholder_url(self) -> str:
        """What a row renders with: a short URL of the same length as every real one."""
        return short_url(self.domain, self.placeholder)

    def tokens(self, keys: pa.Array | pa.ChunkedArray, linked: pa.Array | pa.ChunkedArray,
               *, attempt: int = 0) -> pa.Array:  # fmt: skip
        """Each row's token where ``linked``, else null: HMACs only for the linked rows."""
        linked = _whole(linked)
        count = pc.sum(linked).as_py() or 0
        if count == 0:
            return pa.nulls(len(linked), pa.string())
        if count == len(linked):
            return token_array(keys, self.secret, attempt=attempt)
        made = token_array(_whole(keys).filter(linked), self.secret, attempt=attempt)
        return _scatter(made, linked)


def targets(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The link field as targets: trimmed, and an empty value (a CSV's blank cell) null."""
    trimmed = pc.utf8_trim_whitespace(_whole(values).cast(pa.string()))
    return pc.if_else(pc.equal(pc.utf8_length(trimmed), 0), pa.scalar(None, pa.string()), trimmed)


def check_place(*, code: str | None, variables: Mapping[str, str] | None, text: str | None,
                where: str) -> None:  # fmt: skip
    """Rows with a link: a template (``code``, its declared ``variables``) that does not use
    ``link``, or a ``text`` without ``{link}``, would lose it - an InputError naming the field."""
    if code is not None and LINK_VARIABLE not in (variables or {}):
        raise InputError(f"{where}: link: template {code} does not use "
                         f"{{{{ {LINK_VARIABLE} }}}}: the link would be lost")  # fmt: skip
    if text is not None and LINK_MARK not in text:
        raise InputError(f"{where}: link: the text has no {LINK_MARK} to carry it: "
                         "the link would be lost")  # fmt: skip


def usable(target: str, checked: dict[str, bool]) -> bool:
    """True if ``target`` can be a link's target; ``checked`` remembers each distinct one."""
    found = checked.get(target)
    if found is None:
        try:
            check_target(target, where="link")
        except InputError:
            found = False
        else:
            found = True
        checked[target] = found
    return found


def splice(texts: pa.Array, tokens: pa.Array, plan: LinkPlan) -> pa.Array:
    """Each text with the plan's placeholder replaced by its row's token: split at the
    placeholder, joined with the token (a row without one has no placeholder to split)."""
    pieces = pc.split_pattern(_whole(texts), pattern=plan.placeholder)
    return pc.binary_join(pieces, pc.fill_null(_whole(tokens), ""))


def relinked(table: pa.Table, plan: LinkPlan, *, attempt: int) -> pa.Table:
    """Outbox rows (``idempotency_key``, ``text``, ``link_token``) with the
    ``attempt``-th token of each linked row's key, its text changed to carry it: the
    retry after the store refused a token another key's message holds (rare: see
    :data:`~jingxin.analytics.links.TOKEN_LENGTH`), so plain Python per row is fine."""
    old = table.column("link_token").to_pylist()
    new = plan.tokens(table.column("idempotency_key"), pc.is_valid(table.column("link_token")),
                      attempt=attempt).to_pylist()  # fmt: skip
    url = short_url(plan.domain, "")
    texts = [text if was is None else text.replace(url + was, url + now)
             for text, was, now in zip(table.column("text").to_pylist(), old, new, strict=True)]  # fmt: skip
    table = table.set_column(table.column_names.index("text"), "text", pa.array(texts, pa.string()))
    index = table.column_names.index("link_token")
    return table.set_column(index, "link_token", pa.array(new, pa.string()))


def _scatter(values: pa.Array, mask: pa.Array) -> pa.Array:
    """``values`` put at the places ``mask`` is true, null elsewhere."""
    import numpy as np

    flags = mask.to_numpy(zero_copy_only=False)
    positions = np.full(len(flags), -1, dtype=np.int64)
    positions[flags] = np.arange(int(flags.sum()), dtype=np.int64)
    indices = pa.array(positions, mask=~flags)
    return pc.take(values, indices)


def _whole(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
