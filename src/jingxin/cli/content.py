"""``jingxin template`` (catalogue and lifecycle) and ``jingxin review`` (content review).

Template commands work on the operational store named by the settings (``store.url``)
or ``--url``; the schema is brought to the newest revision on first use. ``jingxin
review`` exits 0 on pass and needs-review, 1 on block (``--strict``: 1 on needs-review
too), 2 on bad input, so scripts can gate on it.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from jingxin.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.orm import Session

    from jingxin.config import Settings
    from jingxin.content.review import Reviewer, ReviewResult

console = Console(highlight=False, soft_wrap=True, markup=False)

UrlOption = Annotated[str | None, typer.Option("--url", help="Store URL (default: store.url).")]
TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.")]
LexiconOption = Annotated[
    list[Path] | None,
    typer.Option("--lexicon", help="Extra word list (file or directory); repeatable."),
]


def _settings() -> Settings:
    from jingxin.config import load_settings

    return load_settings()


@contextmanager
def _session(url: str | None) -> Iterator[Session]:
    from jingxin.data.store import open_store
    from jingxin.data.store.tenants import ensure_default_tenant

    store = open_store(url or _settings().store.url, upgrade=True)
    try:
        with store.transaction() as session:
            ensure_default_tenant(session)
            yield session
    finally:
        store.dispose()


def _reviewer(lexicons: list[Path] | None = None, *, default: bool = True) -> Reviewer:
    from jingxin.content.review import build_reviewer

    return build_reviewer(
        _settings().content, extra_lexicons=lexicons or [], include_default=default
    )


def _parse_vars(pairs: list[str] | None) -> dict[str, str]:
    values = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--var {pair!r}: expected NAME=VALUE")
        values[name.strip()] = value
    return values


def _row(t: Any) -> str:
    return f"{t.id:>4}  {t.tenant_id:<10} {t.code:<28} v{t.version:<3} {t.category:<12} {t.status}"


# ------------------------------------------------------------------------- template


def list_cmd(
    url: UrlOption = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    code: Annotated[str | None, typer.Option("--code", help="Only this code.")] = None,
) -> None:
    """List template versions."""
    from jingxin.content.catalog import list_templates

    with _session(url) as session:
        rows = list_templates(session, tenant_id=tenant, status=status, code=code)
        console.print(f"{'id':>4}  {'tenant':<10} {'code':<28} {'ver':<4} {'category':<12} status")
        for template in rows:
            console.print(_row(template))


def show(template_id: int, url: UrlOption = None) -> None:
    """Show one template version: body, variables, review."""
    from jingxin.content.catalog import get_template

    with _session(url) as session:
        t = get_template(session, template_id=template_id)
        console.print(_row(t))
        console.print(f"variables: {json.dumps(t.variables, ensure_ascii=False)}")
        if t.reviewer:
            console.print(f"reviewed by {t.reviewer}: {t.review_reason or ''}")
        console.print(t.body)


def add(file: Path, url: UrlOption = None, tenant: TenantOption = "operator") -> None:
    """Add the templates in a YAML/JSON file as draft versions."""
    from jingxin.content.catalog import add_template
    from jingxin.content.library import load_documents

    documents = load_documents(file)
    with _session(url) as session:
        for document in documents:
            template = add_template(session, document=document, tenant_id=tenant)
            console.print("added " + _row(template))


def edit(template_id: int, file: Path, url: UrlOption = None) -> None:
    """Replace body and variables from a file (a new draft version if approved/rejected)."""
    from jingxin.content.catalog import edit_template
    from jingxin.content.library import load_documents

    document = load_documents(file)[0]
    with _session(url) as session:
        edited = edit_template(
            session, template_id=template_id, body=document.body, variables=document.variables
        )
        console.print("edited " + _row(edited))


def submit(template_id: int, url: UrlOption = None, lexicon: LexiconOption = None) -> None:
    """Submit a draft for review (runs the automatic content review first)."""
    from jingxin.content.catalog import submit_template

    with _session(url) as session:
        result = submit_template(session, template_id=template_id, reviewer=_reviewer(lexicon))
        console.print("submitted " + _row(result.template))
        if result.review is not None:
            _print_review(result.review)


def approve(
    template_id: int,
    reviewer: Annotated[str, typer.Option("--reviewer", help="Who approves.")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    url: UrlOption = None,
) -> None:
    """Approve a submitted template (older approved versions are archived)."""
    from jingxin.content.catalog import approve_template

    with _session(url) as session:
        console.print(
            "approved "
            + _row(
                approve_template(session, template_id=template_id, reviewer=reviewer, reason=reason)
            )
        )


def reject(
    template_id: int,
    reviewer: Annotated[str, typer.Option("--reviewer", help="Who rejects.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept for the author).")],
    url: UrlOption = None,
) -> None:
    """Reject a submitted template, with a reason."""
    from jingxin.content.catalog import reject_template

    with _session(url) as session:
        console.print(
            "rejected "
            + _row(
                reject_template(session, template_id=template_id, reviewer=reviewer, reason=reason)
            )
        )


def withdraw(template_id: int, url: UrlOption = None) -> None:
    """Take a submitted template back to draft."""
    from jingxin.content.catalog import withdraw_template

    with _session(url) as session:
        console.print("withdrawn " + _row(withdraw_template(session, template_id=template_id)))


def archive(template_id: int, url: UrlOption = None) -> None:
    """Archive a template version (it can no longer be sent)."""
    from jingxin.content.catalog import archive_template

    with _session(url) as session:
        console.print("archived " + _row(archive_template(session, template_id=template_id)))


def render_cmd(
    template_id: int,
    var: Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE; repeatable.")] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Use the starter library's sample values.")
    ] = False,
    card: Annotated[
        Path | None, typer.Option("--card", help="Also show this card's fallback.")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Preview a template (any status) with values: text, parts, and fit."""
    from jingxin.content.catalog import get_template, render_template
    from jingxin.content.library import library_document

    values: dict[str, object] = {}
    with _session(url) as session:
        template = get_template(session, template_id=template_id)
        if sample:
            document = library_document(template.code)
            if document is None:
                raise InputError(f"{template.code!r} is not in the starter library: no sample")
            values.update(document.sample)
        values.update(_parse_vars(var))
        rendered = render_template(
            session,
            template=template,
            values=values,
            settings=_settings().content,
            require_approved=False,
        )
        tenant = session.get(_tenant_model(), template.tenant_id)
        signature = tenant.signature if tenant else None
    console.print(rendered.text)
    p = rendered.parts
    console.print(
        f"-- {p.parts} part(s), {p.units} {p.encoding} units, {p.remaining} left in the last part"
    )
    if rendered.error:
        raise InputError(rendered.error)
    if card is not None:
        _card_text(card, signature=signature, category=template.category)


def _tenant_model() -> Any:
    from jingxin.data.store.models import Tenant

    return Tenant


def seed_library(
    url: UrlOption = None,
    tenant: TenantOption = "operator",
    approve_as: Annotated[
        str | None,
        typer.Option("--approve-as", help="Also submit and approve them in this reviewer's name."),
    ] = None,
) -> None:
    """Load the starter library (operator care, industry notifications) as templates."""
    from jingxin.content.catalog import seed_library as seed
    from jingxin.content.library import starter_library

    with _session(url) as session:
        added = seed(
            session,
            documents=starter_library(),
            tenant_id=tenant,
            approve_as=approve_as,
            reviewer=_reviewer() if approve_as else None,
        )
        for template in added:
            console.print("added " + _row(template))
        console.print(f"{len(added)} template(s) added")


# ------------------------------------------------------------------------- review


def _print_review(result: ReviewResult) -> None:
    p = result.parts
    console.print(f"verdict: {result.verdict}  ({p.parts} part(s), {p.units} {p.encoding} units)")
    for reason in result.reasons:
        shown = f"  «{result.text[reason.span[0] : reason.span[1]]}»" if reason.span else ""
        console.print(f"  [{reason.severity}] {reason.describe()}{shown}")


def _card_text(path: Path, *, signature: str | None, category: str) -> str:
    from jingxin.content.card import fallback_text, load_card

    settings = _settings().content
    card = load_card(path)
    text = fallback_text(
        card,
        signature=signature,
        category=category,
        max_parts=settings.max_parts,
        unsubscribe_text=settings.unsubscribe_text,
    )
    console.print(f"card: {card.brand.name} / {card.title} ({len(card.buttons)} button(s))")
    console.print("fallback text:")
    console.print(text)
    return text


def review(
    text: Annotated[str | None, typer.Argument(help="The SMS text to review.")] = None,
    category: Annotated[
        str, typer.Option("--category", help="otp | notification | marketing")
    ] = "notification",
    lexicon: LexiconOption = None,
    no_default_lexicon: Annotated[bool, typer.Option("--no-default-lexicon")] = False,
    no_signature: Annotated[
        bool, typer.Option("--no-signature", help="Do not require 【signature】.")
    ] = False,
    template: Annotated[
        int | None, typer.Option("--template", help="Review a stored template.")
    ] = None,
    card: Annotated[
        Path | None, typer.Option("--card", help="Review a card's fallback text.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on needs-review too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    url: UrlOption = None,
) -> None:
    """Review an SMS text, a stored template or a card: verdict, reasons, spans, parts."""
    if sum(x is not None for x in (text, template, card)) != 1:
        raise InputError("give exactly one of TEXT, --template ID or --card FILE")
    if category not in ("otp", "notification", "marketing"):
        raise InputError(f"--category {category!r}: use otp, notification or marketing")
    reviewer = _reviewer(lexicon, default=not no_default_lexicon)
    if card is not None:
        result = reviewer.review(
            _card_text(card, signature=None, category=category), category=category
        )
    elif template is not None:
        result = _review_template(reviewer, template, url)
    else:
        result = reviewer.review(text or "", category=category, require_signature=not no_signature)
    if as_json:
        console.print(json.dumps(_as_dict(result), ensure_ascii=False))
    else:
        _print_review(result)
    blocked = result.verdict == "block" or (strict and result.verdict == "needs-review")
    raise typer.Exit(1 if blocked else 0)


def _review_template(reviewer: Reviewer, template_id: int, url: str | None) -> ReviewResult:
    from jingxin.content.catalog import get_template
    from jingxin.content.review import review_template
    from jingxin.content.templates import compile_template

    with _session(url) as session:
        t = get_template(session, template_id=template_id)
        tenant = session.get(_tenant_model(), t.tenant_id)
        compiled = compile_template(t.body, t.variables, where=f"template #{t.id}")
        result = review_template(
            reviewer,
            compiled,
            category=t.category,
            signature=tenant.signature if tenant else None,
        )
        console.print(
            f"template #{t.id} {t.code} v{t.version} ({t.category}); variables shown as 〇"
        )
        console.print(result.text)
        return result


def _as_dict(result: ReviewResult) -> dict[str, Any]:
    return {
        "verdict": result.verdict,
        "parts": result.parts.parts,
        "units": result.parts.units,
        "encoding": result.parts.encoding,
        "reasons": [
            {
                "code": r.code,
                "severity": r.severity,
                "message": r.message,
                "span": list(r.span) if r.span else None,
                "category": r.category,
            }
            for r in result.reasons
        ],
    }


def register(app: typer.Typer) -> None:
    """Add ``template`` and ``review`` to ``app``."""
    group = typer.Typer(
        help="SMS templates: library, versions, review lifecycle, preview.", no_args_is_help=True
    )
    group.command("list")(list_cmd)
    group.command("show")(show)
    group.command("add")(add)
    group.command("edit")(edit)
    group.command("submit")(submit)
    group.command("approve")(approve)
    group.command("reject")(reject)
    group.command("withdraw")(withdraw)
    group.command("archive")(archive)
    group.command("render")(render_cmd)
    group.command("seed-library")(seed_library)
    app.add_typer(group, name="template")
    app.command("review")(review)
