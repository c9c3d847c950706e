"""Vouchers: unambiguous unique codes, one voucher per issue key, a QR image of the link,
and redemption once, at the bound merchant, before expiry - also when two try at once;
merchants listed, removed (no longer redeeming) and added again."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
import segno
from sqlalchemy import func, select

from jingxin.config import HallSettings
from jingxin.data.store.engine import open_store
from jingxin.data.store.models.hall import Merchant, Voucher
from jingxin.errors import ConflictError, InputError
from jingxin.hall import vouchers
from jingxin.hall.context import HallContext, HallRequest
from jingxin.hall.vouchers import (
    ALPHABET,
    add_merchant,
    deactivate_merchant,
    issue_voucher,
    list_merchants,
    list_vouchers,
    merchant_by_number,
    new_code,
    redeem_voucher,
    redeem_voucher_mo,
    voucher_link,
    voucher_qr,
    write_qr,
)

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
HOLDER = "+8613812345678"
CAFE, SHOP = "+8613700000001", "+8613700000002"


def fill(store) -> None:
    with store.transaction() as s:
        add_merchant(s, id="M001", name="星巴克", msisdn="13700000001", tenant_id="operator")
        add_merchant(s, id="M002", name="全家", msisdn="13700000002", tenant_id="operator")


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    fill(opened)
    yield opened
    opened.dispose()


def issue(store, key: str = "redeem:1", *, msisdn: str = HOLDER, merchant: str = "M001",
          expires_at: datetime = NOON + timedelta(days=30),
          title: str = "咖啡券") -> Voucher:  # fmt: skip
    with store.transaction() as s:
        return issue_voucher(s, issue_key=key, msisdn=msisdn, tenant_id="operator",
                             merchant_id=merchant, title=title, value_fen=1000, points_cost=100,
                             expires_at=expires_at, issued_at=NOON)  # fmt: skip


def context(store, tmp_path) -> HallContext:
    return HallContext(store=store, settings=HallSettings(voucher_dir=str(tmp_path / "qr")),
                       now=NOON)  # fmt: skip


def mo(mo_id: int, *, msisdn: str, at: datetime = NOON, text: str = "hx") -> HallRequest:
    return HallRequest(mo_id=mo_id, msisdn=msisdn, service_number="10086", tenant_id="operator",
                       text=text, at=at)  # fmt: skip


# ----------------------------------------------------------------------------- codes


def test_codes_are_ten_unambiguous_characters_and_differ() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == 10 and set(c) <= set(ALPHABET) for c in codes)
    assert not set("01OI") & set(ALPHABET)
    assert set().union(*map(set, codes)) == set(ALPHABET)  # every symbol in use


def test_one_voucher_per_issue_key(store) -> None:
    first = issue(store, "redeem:1")
    again = issue(store, "redeem:1", title="另一张")
    other = issue(store, "redeem:2")
    assert (again.id, again.code, again.title) == (first.id, first.code, "咖啡券")
    assert other.code != first.code
    with store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Voucher)) == 2


def test_a_taken_code_is_drawn_again(store, monkeypatch) -> None:
    # Given a voucher, and a code generator that first repeats its code
    taken = issue(store, "redeem:1").code
    draws = iter([taken, taken, "ABCDEFGH23"])
    monkeypatch.setattr(vouchers, "new_code", lambda: next(draws))
    # When another voucher is issued
    fresh = issue(store, "redeem:2")
    # Then it gets the first free code
    assert fresh.code == "ABCDEFGH23"


# ----------------------------------------------------------------------------- link and QR


def test_the_qr_image_is_an_svg_of_the_links_qr_code(tmp_path) -> None:
    settings = HallSettings(voucher_link_base="https://jx.cn/v/", voucher_dir=str(tmp_path / "q"))
    link = voucher_link(settings, "ABCDEFGH23")
    assert link == "https://jx.cn/v/ABCDEFGH23"
    image = voucher_qr(link)
    # The SVG parses, and its size is that of the QR code of this link (4 px a module,
    # 4 modules of quiet zone around)
    root = ET.fromstring(image)
    assert root.tag.endswith("svg")
    assert root.find("{http://www.w3.org/2000/svg}path") is not None
    side = segno.make_qr(link, error="m").symbol_size(scale=4)
    assert (int(root.get("width")), int(root.get("height"))) == side
    assert voucher_qr(link) == image and voucher_qr(link + "X") != image
    # And write_qr puts it at <voucher_dir>/<code>.svg
    voucher = Voucher(code="ABCDEFGH23")
    path = write_qr(settings, voucher)
    assert path == tmp_path / "q" / "ABCDEFGH23.svg"
    assert path.read_bytes() == image


# ----------------------------------------------------------------------------- listing


def test_qb_lists_the_numbers_usable_vouchers_first_to_expire_first(store, tmp_path) -> None:
    # Given seven usable vouchers of the holder, one redeemed, one expired, one of another
    for i in range(8):
        issue(store, f"redeem:{i}", expires_at=NOON + timedelta(days=30 - i), title=f"券{i}")
    issue(store, "redeem:old", expires_at=NOON - timedelta(days=1), title="过期券")
    issue(store, "redeem:other", msisdn="+8613900000000", title="别人的券")
    redeem_voucher(store, code=issue(store, "redeem:7").code, merchant_id="M001", at=NOON)
    # When the holder texts QB
    answer = list_vouchers(context(store, tmp_path), mo(9, msisdn=HOLDER, text="qb"))
    # Then the five first to expire are listed in that order, and the other two counted
    assert (answer.command, answer.kind) == ("vouchers", "query")
    listed = sorted((answer.text.index(f"券{i}（"), f"券{i}") for i in range(8)
                    if f"券{i}（" in answer.text)  # fmt: skip
    assert [title for _, title in listed] == ["券6", "券5", "券4", "券3", "券2"]
    assert "另有2张" in answer.text
    assert "过期券" not in answer.text and "别人的券" not in answer.text
    assert "星巴克" in answer.text and "10元" in answer.text


def test_qb_with_no_vouchers_says_so(store, tmp_path) -> None:
    answer = list_vouchers(context(store, tmp_path), mo(9, msisdn=HOLDER, text="qb"))
    assert "暂无可用的电子券" in answer.text


# ----------------------------------------------------------------------------- redemption


def test_a_voucher_is_redeemed_once(store) -> None:
    code = issue(store).code
    first = redeem_voucher(store, code=code.lower(), merchant_id="M001", at=NOON)
    second = redeem_voucher(store, code=code, merchant_id="M001", at=NOON + timedelta(hours=1))
    assert (first.ok, first.reason, first.voucher.redeemed_by) == (True, None, "M001")
    assert (second.ok, second.reason) == (False, "already_redeemed")
    assert second.voucher.redeemed_at == NOON


@pytest.mark.parametrize(("code", "merchant", "at", "reason"), [
    ("ZZZZZZZZZZ", "M001", NOON, "unknown_code"),
    (None, "M002", NOON, "wrong_merchant"),
    (None, "M001", NOON + timedelta(days=31), "expired"),
    (None, "M999", NOON, "unknown_merchant"),
])  # fmt: skip
def test_a_redemption_that_cannot_go_through_says_why(store, code, merchant, at, reason) -> None:
    issued = issue(store)
    result = redeem_voucher(store, code=code or issued.code, merchant_id=merchant, at=at)
    assert (result.ok, result.reason) == (False, reason)
    with store.transaction() as s:
        assert s.get(Voucher, issued.id).redeemed_at is None


def test_a_wrong_merchant_is_told_so_even_for_a_redeemed_voucher(store) -> None:
    code = issue(store).code
    redeem_voucher(store, code=code, merchant_id="M001", at=NOON)
    assert redeem_voucher(store, code=code, merchant_id="M002", at=NOON).reason == "wrong_merchant"


def test_an_inactive_merchant_cannot_redeem(store) -> None:
    code = issue(store).code
    with store.transaction() as s:
        s.get(Merchant, "M001").active = False
    assert redeem_voucher(store, code=code, merchant_id="M001", at=NOON).reason == (
        "unknown_merchant")


def test_two_redemptions_at_once_one_wins(pg_url) -> None:
    # Given a voucher on PostgreSQL
    store = open_store(pg_url, upgrade=True)
    try:
        fill(store)
        code = issue(store).code
        barrier = threading.Barrier(2)
        results = []

        def attempt(minute: int) -> None:
            barrier.wait()
            results.append(redeem_voucher(store, code=code, merchant_id="M001",
                                          at=NOON + timedelta(minutes=minute)))  # fmt: skip

        # When two cashiers redeem it at the same moment
        threads = [threading.Thread(target=attempt, args=(m,)) for m in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Then exactly one succeeds and the other is told it was already redeemed
        assert sorted((r.ok, r.reason) for r in results) == [
            (False, "already_redeemed"), (True, None)]
        winner = next(r for r in results if r.ok)
        with store.transaction() as s:
            assert s.get(Voucher, winner.voucher.id).redeemed_at == winner.voucher.redeemed_at
    finally:
        store.dispose()


# ----------------------------------------------------------------------------- HX by SMS


def test_hx_from_an_unregistered_number_is_refused(store, tmp_path) -> None:
    code = issue(store).code
    answer = redeem_voucher_mo(context(store, tmp_path), mo(1, msisdn=HOLDER), code=code)
    assert answer.outcome == "failed:unknown_merchant"
    assert "该号码不是登记的商户" in answer.text


def test_hx_redeems_at_the_senders_merchant_and_a_rerun_answers_the_same(store, tmp_path) -> None:
    # Given a voucher of M001 (the holder 13812345678)
    code = issue(store).code
    ctx = context(store, tmp_path)
    # When M001's number texts HX<code> and the MO is handled twice
    first = redeem_voucher_mo(ctx, mo(1, msisdn=CAFE), code=code.lower())
    again = redeem_voucher_mo(ctx, mo(1, msisdn=CAFE), code=code.lower())
    # Then it is redeemed, and the merchant sees the value and the masked holder, twice
    assert first == again
    assert first.outcome == "redeemed"
    assert "10元" in first.text and "138****5678" in first.text and HOLDER not in first.text
    # And a later MO of the same code is told it was redeemed already
    later = redeem_voucher_mo(ctx, mo(2, msisdn=CAFE, at=NOON + timedelta(minutes=5)), code=code)
    assert later.outcome == "failed:already_redeemed"
    assert "已核销" in later.text


def test_hx_at_another_merchant_or_after_expiry_is_refused(store, tmp_path) -> None:
    code = issue(store, expires_at=NOON + timedelta(hours=1)).code
    ctx = context(store, tmp_path)
    wrong = redeem_voucher_mo(ctx, mo(1, msisdn=SHOP), code=code)
    late = redeem_voucher_mo(ctx, mo(2, msisdn=CAFE, at=NOON + timedelta(hours=2)), code=code)
    assert wrong.outcome == "failed:wrong_merchant" and "不是本店的券" in wrong.text
    assert late.outcome == "failed:expired" and "2026年11月23日" in late.text


# ----------------------------------------------------------------------------- merchants


def test_merchants_are_found_by_their_number(store) -> None:
    with store.transaction() as s:
        assert merchant_by_number(s, CAFE).id == "M001"
        assert merchant_by_number(s, HOLDER) is None


@pytest.mark.parametrize(("fields", "names"), [
    ({"msisdn": "12345"}, "merchant.msisdn"),
    ({"id": ""}, "merchant.id"),
    ({"name": " "}, "merchant.name"),
    ({"tenant_id": "nobody"}, "merchant.tenant"),
])  # fmt: skip
def test_a_bad_merchant_names_the_field(store, fields, names) -> None:
    values = {"id": "M003", "name": "店", "msisdn": "13700000003", "tenant_id": "operator",
              **fields}  # fmt: skip
    with pytest.raises(InputError, match=names), store.transaction() as s:
        add_merchant(s, **values)


def merchant_ids(store, **filters) -> list[str]:
    with store.transaction() as s:
        return [m.id for m in list_merchants(s, **filters)]


def test_merchants_are_listed_by_id_active_ones_unless_asked(store) -> None:
    # Given M001 and M002 of the operator, another tenant's M003, and M002 removed
    with store.transaction() as s:
        s.add(Merchant(id="M003", name="便利店", msisdn="+8613700000003", tenant_id="t2"))
        deactivate_merchant(s, id="M002", tenant_id="operator")
    assert merchant_ids(store) == ["M001", "M003"]
    assert merchant_ids(store, include_inactive=True) == ["M001", "M002", "M003"]
    assert merchant_ids(store, tenant_id="operator", include_inactive=True) == ["M001", "M002"]
    assert merchant_ids(store, tenant_id="t2") == ["M003"]


def test_a_removed_merchant_cannot_redeem_until_added_again(store, tmp_path) -> None:
    code = issue(store).code
    # When M001 is removed, twice
    with store.transaction() as s:
        row, changed = deactivate_merchant(s, id=" M001 ", tenant_id="operator")
        assert (row.id, row.active, changed) == ("M001", False, True)
    with store.transaction() as s:
        assert deactivate_merchant(s, id="M001", tenant_id="operator")[1] is False
    # Then it is refused at the counter and by SMS, as an unknown merchant
    assert redeem_voucher(store, code=code, merchant_id="M001", at=NOON).reason == (
        "unknown_merchant")
    answer = redeem_voucher_mo(context(store, tmp_path), mo(1, msisdn=CAFE), code=code)
    assert answer.outcome == "failed:unknown_merchant"
    # And its row and its vouchers are kept
    with store.transaction() as s:
        assert merchant_by_number(s, CAFE).name == "星巴克"
        assert s.scalar(select(Voucher.merchant_id).where(Voucher.code == code)) == "M001"
    # And adding it again (a new name and number) re-activates it
    with store.transaction() as s:
        again = add_merchant(s, id="M001", name="星巴克(新店)", msisdn="13700000009",
                             tenant_id="operator")  # fmt: skip
        assert (again.active, again.msisdn) == (True, "+8613700000009")
    assert redeem_voucher(store, code=code, merchant_id="M001", at=NOON).ok


def test_removing_an_unknown_or_another_tenants_merchant_is_refused(store) -> None:
    with store.transaction() as s:
        s.add(Merchant(id="M003", name="便利店", msisdn="+8613700000003", tenant_id="t2",
                       active=False))  # fmt: skip
    for unknown in ("M999", "m001", "M003"):
        with pytest.raises(InputError, match=f"merchant '{unknown}': no such merchant in "
                                             "tenant 'operator'"), \
                store.transaction() as s:  # fmt: skip
            deactivate_merchant(s, id=unknown, tenant_id="operator")


def test_an_id_in_use_is_not_taken_over_by_adding_it(store) -> None:
    # An active merchant's id, or another tenant's removed one, is refused
    with store.transaction() as s:
        s.add(Merchant(id="M003", name="便利店", msisdn="+8613700000003", tenant_id="t2",
                       active=False))  # fmt: skip
    for taken in ("M002", "M003"):
        with pytest.raises(ConflictError, match=f"merchant.id: '{taken}' is in use"), \
                store.transaction() as s:  # fmt: skip
            add_merchant(s, id=taken, name="店", msisdn="13700000008", tenant_id="operator")
    assert merchant_ids(store, include_inactive=True) == ["M001", "M002", "M003"]
