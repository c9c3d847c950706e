"""The single-message path stays lean: one connection, a statement per row it writes, the
common number shapes read without phonenumbers (same answers), templates compiled once
per approved version."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import event
from test_dispatch_deliver import approve

from jingxin.data.msisdn import normalise_msisdn
from jingxin.dispatch.approval import TemplateCache
from jingxin.dispatch.deliver import Delivery, DeliveryContext, deliver_one, normalised
from jingxin.errors import InputError

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def _slow(raw: str) -> str | None:
    try:
        return normalise_msisdn(raw).e164
    except InputError:
        return None


def _fast(raw: str) -> str | None:
    try:
        return normalised(raw)
    except InputError:
        return None


def test_the_fast_number_shapes_give_phonenumbers_answers() -> None:
    # Given numbers of every leading five digits, in the shapes the fast path reads and
    # a few it does not (spaces, full-width digits, too short, a landline)
    rng = random.Random(7)
    numbers = [f"{p}{rng.randrange(10**6):06d}" for p in range(10000, 20000, 3)]
    numbers += ["+86" + n for n in numbers[::5]]
    numbers += [" 13900000001 ", "１３９００００００００", "1390000000", "02012345678",
                "+8613900000001x"]
    # When each is normalised by the delivery entry, Then it agrees with phonenumbers
    assert [n for n in numbers if _fast(n) != _slow(n)] == []
    assert sum(_fast(n) is not None for n in numbers) > 1000  # the sample has valid numbers


def test_one_message_is_one_checkout_and_a_statement_per_row(store) -> None:
    approve(store, "bill", "notification")
    context = DeliveryContext()
    warm = Delivery(msisdn="13900000009", source="api", idempotency_key="warm",
                    template="bill", variables={"name": "王"})
    deliver_one(store, delivery=warm, context=context, now=NOON)
    seen: list[str] = []
    checkouts: list[int] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_: seen.append(sql.split()[0]))  # fmt: skip
    event.listen(store.engine.pool, "checkout", lambda *_: checkouts.append(1))
    # When a message is delivered (its template and tenant already cached)
    got = deliver_one(store, delivery=Delivery(msisdn="13900000001", source="api",
                                               idempotency_key="k1", template="bill",
                                               variables={"name": "王"}), context=context,
                      now=NOON)  # fmt: skip
    # Then one checkout ran one SELECT (state and earlier message) and three INSERTs
    assert got.outcome == "queued"
    assert (len(checkouts), seen) == (1, ["SELECT", "INSERT", "INSERT", "INSERT"])
    # And its duplicate is one SELECT and nothing written
    seen.clear()
    again = deliver_one(store, delivery=Delivery(msisdn="13900000001", source="api",
                                                 idempotency_key="k1", template="bill",
                                                 variables={"name": "王"}), context=context,
                        now=NOON)  # fmt: skip
    assert (again.outcome, again.message_id, seen) == ("duplicate", got.message_id, ["SELECT"])


def test_a_template_is_compiled_again_only_for_a_new_version(store, monkeypatch) -> None:
    import jingxin.content.templates as templates

    # Given an approved template and a cache that looks it up on every call
    approve(store, "bill", "notification")
    compiled: list[str] = []
    real = templates.compile_template
    def counting(body, *args, **kwargs):
        compiled.append(body)
        return real(body, *args, **kwargs)

    monkeypatch.setattr(templates, "compile_template", counting)
    cache = TemplateCache(ttl=0)
    first = cache.get(store, tenant_id="operator", code="bill")
    # When it is looked up again with the same version approved, Then it is not recompiled
    assert cache.get(store, tenant_id="operator", code="bill") is first
    assert len(compiled) == 1
    # When a new version is approved, Then the next look-up compiles and returns it
    _new_version(store, "bill", "{{ name }}您好，新版本。")
    second = cache.get(store, tenant_id="operator", code="bill")
    assert (second.version, len(compiled)) == (first.version + 1, 2)
    assert "新版本" in compiled[-1]


def _new_version(store, code: str, body: str) -> None:
    from jingxin.content import catalog
    from jingxin.content.library import TemplateDocument

    with store.transaction() as s:
        doc = TemplateDocument(code=code, category="notification", body=body,
                               variables={"name": "str"})  # fmt: skip
        draft = catalog.add_template(s, document=doc)
        catalog.submit_template(s, template_id=draft.id)
        catalog.approve_template(s, template_id=draft.id, reviewer="reviewer")


@pytest.mark.parametrize("raw", ["", "abc", "+861390000000"])
def test_an_invalid_number_still_names_the_field(store, raw) -> None:
    with pytest.raises(InputError, match="delivery: msisdn: invalid msisdn"):
        deliver_one(store, delivery=Delivery(msisdn=raw, source="api", idempotency_key="k",
                                             text="您好"), now=NOON)  # fmt: skip
