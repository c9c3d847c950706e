"""Electronic vouchers: issued for points, shown as a code, a link and a QR image, redeemed
once by the merchant they are bound to before they expire.

Codes are 10 characters from an alphabet without the look-alikes 0/O and 1/I (32
symbols, 50 bits from :mod:`secrets`): read aloud or typed from a screen, they are not
mistaken, and they cannot be guessed. Each voucher has a unique ``issue_key`` naming what
bought it (``redeem:<mo_id>``), so a re-run issues nothing new.

Crash-safety contract
---------------------
:func:`redeem_voucher` is ONE conditional ``UPDATE ... WHERE code = :code AND merchant_id
= :merchant AND redeemed_at IS NULL AND expires_at > :at``: the database decides who
redeems, so of two merchants' (or two cashiers') simultaneous attempts exactly one
changes the row and the other is told it was already redeemed. Nothing is read first and
written after. The redemption time is the MO's receipt time, so a re-run of the same MO
recognises its own redemption and answers the same.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from jingxin.config import HallSettings
from jingxin.content.filters import cn_date, mask, yuan
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models.hall import Merchant, Voucher
from jingxin.data.store.models.tenants import DEFAULT_TIMEZONE
from jingxin.errors import ConfigError, ConflictError, InputError, StoreError
from jingxin.hall.context import Answer, HallContext, HallRequest
from jingxin.hall.points import insert_new

__all__ = ["ALPHABET", "REDEMPTION_REASONS", "Redemption", "add_merchant",
           "deactivate_merchant", "issue_voucher", "list_merchants", "list_vouchers",
           "merchant_by_number", "new_code", "redeem_voucher", "redeem_voucher_mo",
           "voucher_by_issue_key", "voucher_link", "voucher_qr", "write_qr"]  # fmt: skip

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, no 1/I
CODE_LENGTH = 10
CODE_ATTEMPTS = 8  # 2**50 codes: a second collision in a row means something else is wrong
LIST_LIMIT = 5
REDEMPTION_REASONS = ("unknown_code", "already_redeemed", "expired", "wrong_merchant",
                      "unknown_merchant")  # fmt: skip
LOCAL_ZONE = ZoneInfo(DEFAULT_TIMEZONE)  # the subscriber's calendar: vouchers end at midnight


@dataclass(frozen=True, slots=True)
class Redemption:
    """What a merchant's redemption attempt came to; ``reason`` is one of
    :data:`REDEMPTION_REASONS` when it did not go through."""

    ok: bool
    reason: str | None = None
    voucher: Voucher | None = None


# ----------------------------------------------------------------------------- issuing


def new_code() -> str:
    """A fresh random voucher code (see the module docstring)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def voucher_by_issue_key(session: Session, issue_key: str) -> Voucher | None:
    return session.scalar(select(Voucher).where(Voucher.issue_key == issue_key))


def issue_voucher(session: Session, *, issue_key: str, msisdn: str, tenant_id: str,
                  merchant_id: str, title: str, value_fen: int, points_cost: int = 0,
                  expires_at: datetime, issued_at: datetime | None = None) -> Voucher:  # fmt: skip
    """The voucher issued under ``issue_key``: made now with a fresh code, or the one an
    earlier (or a concurrent) run made. A code that happens to be taken is drawn again."""
    for _ in range(CODE_ATTEMPTS):
        existing = voucher_by_issue_key(session, issue_key)
        if existing is not None:
            return existing
        values = {"code": new_code(), "issue_key": issue_key, "msisdn": msisdn,
                  "tenant_id": tenant_id, "merchant_id": merchant_id, "title": title,
                  "value_fen": value_fen, "points_cost": points_cost,
                  "expires_at": expires_at}  # fmt: skip
        if issued_at is not None:
            values["issued_at"] = issued_at
        voucher_id = insert_new(session, Voucher, **values)
        if voucher_id is not None:
            return session.get_one(Voucher, voucher_id)
    raise StoreError(f"issuing voucher {issue_key}: no free code after {CODE_ATTEMPTS} draws "
                     "(is hall_vouchers.code still unique and long enough?)")  # fmt: skip


def expiry_after(at: datetime, days: int) -> datetime:
    """The end of the local day ``days`` after ``at`` (a voucher is good all that day)."""
    last = at.astimezone(LOCAL_ZONE).date() + timedelta(days=days)
    return datetime.combine(last + timedelta(days=1), datetime.min.time(), LOCAL_ZONE)


def last_day(expires_at: datetime) -> str:
    """The last local day a voucher is good on, in Chinese (``2026年11月23日``)."""
    return cn_date((expires_at.astimezone(LOCAL_ZONE) - timedelta(microseconds=1)).date())


def yuan_of(fen: int) -> str:
    """``1000`` → ``10元``, ``1250`` → ``12.50元``."""
    return yuan(Decimal(fen) / 100)


def shown_number(msisdn: str) -> str:
    """A number as a reply may show it to someone else: ``+8613812345678`` → ``138****5678``."""
    return mask(msisdn.removeprefix("+86"))


# ----------------------------------------------------------------------------- link and QR


def voucher_link(settings: HallSettings, code: str) -> str:
    return settings.voucher_link_base + code


def voucher_qr(link: str) -> bytes:
    """An SVG image of the QR code of ``link`` (always a full QR code: phones' scanners do
    not all read the Micro QR that ``segno.make`` picks for short texts)."""
    import segno

    buffer = io.BytesIO()
    segno.make_qr(link, error="m").save(buffer, kind="svg", scale=4,
                                         title="voucher")  # fmt: skip
    return buffer.getvalue()


def write_qr(settings: HallSettings, voucher: Voucher, *, home: Path = Path(".")) -> Path:
    """Write ``<voucher_dir>/<code>.svg`` (the image the link shows) and return its path; a
    relative ``voucher_dir`` is under ``home`` (the settings' ``home``)."""
    path = Path(home) / settings.voucher_dir / f"{voucher.code}.svg"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(voucher_qr(voucher_link(settings, voucher.code)))
    except OSError as exc:
        raise ConfigError(f"[hall] voucher_dir: cannot write {path}: {exc}") from exc
    return path


# ----------------------------------------------------------------------------- the holder


def list_vouchers(ctx: HallContext, request: HallRequest) -> Answer:
    """``QB``: the number's vouchers still to use (the first to expire first, at most 5)."""
    now = request.at
    usable = (Voucher.msisdn == request.msisdn, Voucher.redeemed_at.is_(None),
              Voucher.expires_at > now)  # fmt: skip
    with store_errors(f"listing the vouchers of {request.msisdn}"), \
            ctx.store.transaction() as session:  # fmt: skip
        total = session.scalar(select(func.count()).select_from(Voucher).where(*usable))
        rows = session.execute(
            select(Voucher, Merchant.name).outerjoin(Merchant, Merchant.id == Voucher.merchant_id)
            .where(*usable).order_by(Voucher.expires_at, Voucher.id).limit(LIST_LIMIT)).all()
    if not rows:
        text = ctx.say("vouchers.none", "您暂无可用的电子券。回复JF查询积分，积分可兑换电子券。")
        return Answer(text=text, command="vouchers", kind="query")
    lines = "\n".join(
        ctx.say("vouchers.line", "{title}（{value}，{merchant}）券码{code}，有效期至{expires}",
                title=v.title, value=yuan_of(v.value_fen), merchant=name or v.merchant_id,
                code=v.code, expires=last_day(v.expires_at))
        for v, name in rows)  # fmt: skip
    more = ctx.say("vouchers.more", "\n另有{count}张未列出。", count=total - len(rows)) \
        if total > len(rows) else ""  # fmt: skip
    text = ctx.say("vouchers.list", "您的电子券：\n{lines}{more}\n二维码：{link}券码",
                   lines=lines, more=more, link=ctx.settings.voucher_link_base)  # fmt: skip
    return Answer(text=text, command="vouchers", kind="query")


# ----------------------------------------------------------------------------- merchants


def add_merchant(session: Session, *, id: str, name: str, msisdn: str,  # noqa: A002
                 tenant_id: str) -> Merchant:  # fmt: skip
    """Register a merchant that redeems vouchers from ``msisdn``, or re-activate (with this
    name and number) one of ``tenant_id`` that :func:`deactivate_merchant` stopped; bad
    values are an InputError naming the field, an id in use a ConflictError, a number
    taken a StoreError."""
    from jingxin.data.store.contact import require_tenant
    from jingxin.data.validate import valid_msisdn

    code, title = (id or "").strip(), (name or "").strip()
    if not code or len(code) > 32:
        raise InputError(f"merchant.id: 1 to 32 characters, got {id!r}")
    if not title:
        raise InputError("merchant.name: the merchant's name is required")
    number = valid_msisdn(msisdn, field="merchant.msisdn")
    require_tenant(session, tenant_id=tenant_id, field="merchant.tenant")
    existing = session.get(Merchant, code)
    if existing is not None:
        if existing.active or existing.tenant_id != tenant_id:
            raise ConflictError(f"merchant.id: {code!r} is in use "
                                "(see `jingxin hall merchant list --all`)")  # fmt: skip
        existing.name, existing.msisdn, existing.active = title, number, True
        with store_errors(f"re-activating merchant {code!r}"):
            session.flush()
        return existing
    merchant = Merchant(id=code, name=title, msisdn=number, tenant_id=tenant_id, active=True)
    with store_errors(f"adding merchant {code!r}"):
        session.add(merchant)
        session.flush()
    return merchant


def list_merchants(session: Session, *, tenant_id: str | None = None,
                   include_inactive: bool = False) -> list[Merchant]:  # fmt: skip
    """The registered merchants by id: only the active ones unless ``include_inactive``,
    only ``tenant_id``'s if given."""
    query = select(Merchant).order_by(Merchant.id)
    if not include_inactive:
        query = query.where(Merchant.active.is_(True))
    if tenant_id is not None:
        query = query.where(Merchant.tenant_id == tenant_id)
    return list(session.scalars(query))


def deactivate_merchant(session: Session, *, id: str,  # noqa: A002
                        tenant_id: str) -> tuple[Merchant, bool]:  # fmt: skip
    """Stop merchant ``id`` of ``tenant_id`` redeeming vouchers (refused as
    ``unknown_merchant`` from now on), keeping its row and its vouchers' history; the row
    and whether it changed (False: it was inactive already). An unknown id, or another
    tenant's, is an :class:`InputError`."""
    merchant = session.get(Merchant, (id or "").strip())
    if merchant is None or merchant.tenant_id != tenant_id:
        raise InputError(f"merchant {(id or '').strip()!r}: no such merchant in tenant "
                         f"{tenant_id!r} (see `jingxin hall merchant list --all`)")  # fmt: skip
    if not merchant.active:
        return merchant, False
    merchant.active = False
    session.flush()
    return merchant, True


def merchant_by_number(session: Session, msisdn: str) -> Merchant | None:
    """The merchant registered with ``msisdn`` (active or not), if any."""
    return session.scalar(select(Merchant).where(Merchant.msisdn == msisdn))


# ----------------------------------------------------------------------------- redemption


def redeem_voucher(store: Store, *, code: str, merchant_id: str, at: datetime) -> Redemption:
    """Redeem the voucher ``code`` at ``merchant_id`` at ``at``, once ever (see the
    module's crash-safety contract); why not when it does not go through."""
    code = "".join(code.split()).upper()
    with store_errors(f"redeeming voucher {code}"), store.transaction() as session:
        merchant = session.get(Merchant, merchant_id)
        if merchant is None or not merchant.active:
            return Redemption(ok=False, reason="unknown_merchant")
        changed = session.execute(
            update(Voucher)
            .where(Voucher.code == code, Voucher.merchant_id == merchant_id,
                   Voucher.redeemed_at.is_(None), Voucher.expires_at > at)
            .values(redeemed_at=at, redeemed_by=merchant_id)
            .execution_options(synchronize_session=False)).rowcount  # fmt: skip
        voucher = session.scalar(select(Voucher).where(Voucher.code == code))
    if changed == 1:
        return Redemption(ok=True, voucher=voucher)
    return Redemption(ok=False, reason=_why_not(voucher, merchant_id, at), voucher=voucher)


def _why_not(voucher: Voucher | None, merchant_id: str, at: datetime) -> str:
    # The binding is told first: another merchant learns nothing of the voucher's state.
    if voucher is None:
        return "unknown_code"
    if voucher.merchant_id != merchant_id:
        return "wrong_merchant"
    if voucher.redeemed_at is not None:
        return "already_redeemed"
    if voucher.expires_at <= at:
        return "expired"
    raise StoreError(f"voucher {voucher.code} was not redeemed and none of the reasons holds")


REFUSALS = {
    "unknown_code": ("vouchers.unknown_code", "券码{code}不存在，请核对后重试。"),
    "already_redeemed": ("vouchers.already_redeemed", "券码{code}已核销过，不能重复使用。"),
    "expired": ("vouchers.expired", "券码{code}已于{expires}到期，不能核销。"),
    "wrong_merchant": ("vouchers.wrong_merchant", "券码{code}不是本店的券，不能在本店核销。"),
    "unknown_merchant": ("vouchers.not_merchant", "该号码不是登记的商户，不能核销电子券。"),
}


def redeem_voucher_mo(ctx: HallContext, request: HallRequest, *, code: str) -> Answer:
    """``HX<code>`` from a merchant's registered number: redeem the voucher there."""
    with store_errors(f"looking up the merchant of {request.msisdn}"), \
            ctx.store.transaction() as session:  # fmt: skip
        merchant = merchant_by_number(session, request.msisdn)
    if merchant is None or not merchant.active:
        return _refused(ctx, "unknown_merchant", code=code)
    result = redeem_voucher(ctx.store, code=code, merchant_id=merchant.id, at=request.at)
    voucher = result.voucher
    mine = (voucher is not None and voucher.redeemed_by == merchant.id
            and voucher.redeemed_at == request.at)  # a re-run of this MO  # fmt: skip
    if not (result.ok or mine):
        return _refused(ctx, result.reason or "unknown_code", code=code, voucher=voucher)
    text = ctx.say("vouchers.redeemed", "核销成功：{title}，面值{value}，持券人{holder}，券码{code}。",
                   title=voucher.title, value=yuan_of(voucher.value_fen),
                   holder=shown_number(voucher.msisdn), code=voucher.code)  # fmt: skip
    return Answer(text=text, command="redeem_voucher", outcome="redeemed")


def _refused(ctx: HallContext, reason: str, *, code: str,
             voucher: Voucher | None = None) -> Answer:  # fmt: skip
    key, default = REFUSALS[reason]
    shown = "".join(code.split()).upper()
    expires = last_day(voucher.expires_at) if voucher is not None else ""
    text = ctx.say(key, default, code=shown, expires=expires)
    return Answer(text=text, command="redeem_voucher", outcome=f"failed:{reason}")
