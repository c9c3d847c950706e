"""Short links through THE delivery entry, on SQLite and PostgreSQL (COPY on the bulk path):
the text carries https://<link_domain>/<token>, the row keeps the token and the target,
every path (deliver_one, deliver_many, deliver_table) writes them, a link the text has no
place for is refused, and a token another key's message holds costs a retry, not a message.

One store per dialect serves the whole module (creating a PostgreSQL database per test
would cost more than the tests): every test uses its own keys and numbers."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from sqlalchemy import select, update

from jingxin.analytics.links import short_url, token_for
from jingxin.config import AnalyticsSettings, ContentSettings
from jingxin.content.encoding import count_parts
from jingxin.data.store import open_store
from jingxin.data.store.contact import add_to_blacklist
from jingxin.data.store.models import DecisionRecord, Message
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.dispatch.deliver import (
    Delivery,
    DeliveryContext,
    deliver_many,
    deliver_one,
    deliver_table,
)
from jingxin.errors import ConfigError, InputError

NOW = datetime(2030, 6, 5, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
NIGHT = datetime(2030, 6, 5, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
BLACK = "+8613800000999"
SECRET = "links-test-secret"
TARGET = "https://shop.example.com/offer?id=7&utm=sms"
CONTEXT = DeliveryContext(analytics=AnalyticsSettings(link_secret=SECRET))
PREFIX = "https://jx.cn/"
# What is refused before anything is written is checked on SQLite alone.
SQLITE_ONLY = pytest.mark.parametrize("store", ["sqlite"], indirect=True)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request, tmp_path_factory):
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("links") / "jx.db"
        shutil.copyfile(request.getfixturevalue("migrated_templates")["sqlite"], path)
        opened = _seeded(f"sqlite:///{path}")
        yield opened
        opened.dispose()
        return
    import psycopg

    server = request.getfixturevalue("pg_server")
    name = f"jx_links_{uuid.uuid4().hex[:12]}"
    admin = f"{server.replace('+psycopg', '')}/{os.environ.get('JINGXIN_TEST_PG_DB', 'test')}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        opened = _seeded(f"{server}/{name}")
        yield opened
        opened.dispose()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _seeded(url: str):
    """A migrated store with the operator tenant, two approved templates (one shows
    ``{{ link }}``) and a blacklisted number."""
    from jingxin.content import catalog
    from jingxin.content.library import TemplateDocument

    opened = open_store(url, upgrade=True)
    docs = [TemplateDocument(code="offer", category="marketing", body="{{ name }}您好，专享优惠：{{ link }}",
                             variables={"name": "str", "link": "url"}),
            TemplateDocument(code="plain", category="notification", body="{{ name }}您好，账单已出。",
                             variables={"name": "str"})]  # fmt: skip
    with opened.transaction() as s:
        ensure_default_tenant(s)
        catalog.seed_library(s, documents=docs, approve_as="reviewer", reviewer=None)
        add_to_blacklist(s, msisdn=BLACK, added_by="test", at=NOW - timedelta(days=1))
    return opened


def _messages(store, prefix: str) -> dict[str, tuple]:
    """(text, parts, link_token, link_url) of the messages whose key starts with ``prefix``."""
    with store.sessions() as s:
        found = s.scalars(select(Message).where(Message.idempotency_key.startswith(prefix)))
        return {m.idempotency_key: (m.text, m.parts, m.link_token, m.link_url) for m in found}


def _offer(key: str, msisdn: str, **fields) -> Delivery:
    fields = {"link": TARGET, "category": "marketing", "template": "offer",
              "variables": {"name": "王"}, "source": "api", **fields}  # fmt: skip
    return Delivery(msisdn=msisdn, idempotency_key=key, **fields)


def test_a_template_shows_the_short_link_and_the_row_keeps_token_and_target(store) -> None:
    # When one message with a link is delivered through a template that shows {{ link }}
    done = deliver_one(store, delivery=_offer("one:1", "13610000001"), context=CONTEXT, now=NOW)
    # Then its text carries https://jx.cn/<the key's token>, and its row the token and target
    token = token_for("one:1", SECRET)
    text, parts, stored, url = _messages(store, "one:")["one:1"]
    assert done.outcome == "queued"
    assert short_url("jx.cn", token) in text and TARGET not in text
    assert (stored, url, parts) == (token, TARGET, count_parts(text).parts)
    # And the same key again is a duplicate that keeps the first token and target
    again = deliver_one(store, delivery=_offer("one:1", "13610000001", link="https://b.cn/"),
                        context=CONTEXT, now=NOW)  # fmt: skip
    assert (again.outcome, again.message_id) == ("duplicate", done.message_id)
    assert _messages(store, "one:")["one:1"][2:] == (token, TARGET)


@SQLITE_ONLY
def test_a_text_carries_the_link_at_its_mark(store) -> None:
    # When an already-approved text with {link} goes with a link
    delivery = Delivery(msisdn="13620000001", source="inbox", idempotency_key="text:9",
                        text="您的订单已发货，详情 {link}", link=" https://jx.cn/o/9 ")  # fmt: skip
    deliver_one(store, delivery=delivery, context=CONTEXT, now=NOW)
    # Then the mark is the short link, and the target is kept trimmed
    text, _, token, url = _messages(store, "text:")["text:9"]
    assert f"详情 {PREFIX}{token}" in text and "{link}" not in text
    assert (token, url) == (token_for("text:9", SECRET), "https://jx.cn/o/9")


@SQLITE_ONLY
def test_a_rejection_writes_no_link_and_a_deferral_keeps_its_link(store) -> None:
    # A blacklisted number: a decision row, no message, no link anywhere
    rejected = deliver_one(store, delivery=_offer("late:1", BLACK), context=CONTEXT, now=NOW)
    # Marketing at 23:30: deferred to the morning, queued with its link for then
    deferred = deliver_one(store, delivery=_offer("late:2", "13630000001"), context=CONTEXT,
                           now=NIGHT)  # fmt: skip
    assert (rejected.outcome, deferred.outcome) == ("rejected", "deferred")
    rows = _messages(store, "late:")
    assert set(rows) == {"late:2"} and rows["late:2"][2] == token_for("late:2", SECRET)
    with store.sessions() as s:
        assert s.scalar(select(DecisionRecord.outcome).where(
            DecisionRecord.idempotency_key == "late:1")) == "reject"  # fmt: skip


@SQLITE_ONLY
@pytest.mark.parametrize(("delivery", "field"), [
    (_offer("lost:1", "13640000001", template="plain"), "link: template plain does not use"),
    (Delivery(msisdn="13640000002", source="api", idempotency_key="lost:2", text="没有位置",
              link=TARGET), r"link: the text has no \{link\}"),
    (Delivery(msisdn="13640000003", source="api", idempotency_key="lost:3", text="点击 {link}"),
     r"text: it has \{link\} but the delivery has no link"),
    (_offer("lost:4", "13640000004", variables={"name": "王", "link": TARGET}),
     "link: given both"),
    (_offer("lost:5", "13640000005", link="ftp://jx.cn/file"),
     "link: .*not an http or https URL"),
])  # fmt: skip
def test_a_link_that_would_be_lost_is_refused_naming_the_field(store, delivery, field) -> None:
    with pytest.raises(InputError, match=rf"delivery {delivery.idempotency_key}: {field}"):
        deliver_one(store, delivery=delivery, context=CONTEXT, now=NOW)
    assert _messages(store, delivery.idempotency_key) == {}


@SQLITE_ONLY
def test_a_link_domain_content_review_does_not_allow_is_a_config_error(store) -> None:
    context = DeliveryContext(content=ContentSettings(allowed_domains=["shop.cn"]))
    with pytest.raises(ConfigError, match=r"analytics.link_domain 'jx.cn'.*content.allowed_domains"):
        deliver_one(store, delivery=_offer("cfg:1", "13650000001"), context=context, now=NOW)
    # A message without a link is not held back by it
    plain = Delivery(msisdn="13650000002", source="api", idempotency_key="cfg:2", text="账单已出")
    assert deliver_one(store, delivery=plain, context=context, now=NOW).outcome == "queued"
    assert set(_messages(store, "cfg:")) == {"cfg:2"}


def test_deliver_many_writes_each_link(store) -> None:
    done = deliver_many(store, deliveries=[
        _offer("many:1", "13660000001"), _offer("many:2", "13660000002"),
        _offer("many:3", BLACK), _offer("many:1", "13660000001")],
        context=CONTEXT, now=NOW)  # fmt: skip
    assert [d.outcome for d in done] == ["queued", "queued", "rejected", "duplicate"]
    rows = _messages(store, "many:")
    assert {k: v[2:] for k, v in rows.items()} == {
        k: (token_for(k, SECRET), TARGET) for k in ("many:1", "many:2")}


def _audience(n: int, prefix: str, **columns) -> pa.Table:
    return pa.table({"msisdn": [f"{prefix}{i:04d}" for i in range(n)], "name": ["王"] * n,
                     **columns})  # fmt: skip


def _defaults(source_id: str, **more) -> dict:
    return {"tenant_id": "operator", "category": "marketing", "source": "campaign",
            "source_id": source_id, "template": "offer", **more}  # fmt: skip


def test_deliver_table_gives_every_row_its_own_link_with_the_same_parts(store) -> None:
    # Given 80 rows (the COPY path on PostgreSQL) and one target for all of them
    table = _audience(80, "1367000")
    # When the table is delivered with the link as a default
    summary = deliver_table(store, table=table, context=CONTEXT, now=NOW, campaign_id=7,
                            defaults=_defaults("7", link=TARGET))  # fmt: skip
    # Then each row carries its own key's token; texts differ only by it; parts are equal
    rows = _messages(store, "campaign:7:")
    assert summary.accepted == len(rows) == 80
    first_text, first_parts, first_token, _ = rows["campaign:7:+8613670000000"]
    for key, (text, parts, token, url) in rows.items():
        assert (token, url) == (token_for(key, SECRET), TARGET)
        assert text.replace(token, "") == first_text.replace(first_token, "")
        assert parts == count_parts(text).parts == first_parts
    assert summary.parts == 80 * first_parts
    # And a second run sends nothing more, tokens unchanged
    again = deliver_table(store, table=table, context=CONTEXT, now=NOW, campaign_id=7,
                          defaults=_defaults("7", link="https://other.example.com/"))  # fmt: skip
    assert again.accepted == 0 and sum(again.rejected.values()) + again.duplicates == 80
    assert _messages(store, "campaign:7:") == rows


def test_deliver_table_takes_a_link_column_and_rejects_bad_rows(store) -> None:
    # Given per-row targets: most good, one blank (no link: its template needs one), one bad
    links = [f"https://shop.example.com/u/{i}" for i in range(70)] + ["", "not a url"]
    table = _audience(72, "1368000", link=links)
    summary = deliver_table(store, table=table, context=CONTEXT, now=NOW, campaign_id=8,
                            defaults=_defaults("8"))  # fmt: skip
    rows = _messages(store, "campaign:8:")
    assert summary.accepted == 70 and dict(summary.rejected) == {"no_link": 1, "invalid_link": 1}
    assert rows["campaign:8:+8613680000005"][2:] == (
        token_for("campaign:8:+8613680000005", SECRET), "https://shop.example.com/u/5")
    assert all(f"{PREFIX}{token}" in text for text, _, token, _ in rows.values())
    with store.sessions() as s:
        reasons = set(s.scalars(select(DecisionRecord.reasons).where(
            DecisionRecord.idempotency_key.startswith("campaign:8:"))))  # fmt: skip
    assert reasons == {"no_link", "invalid_link"}


@SQLITE_ONLY
def test_deliver_table_with_a_text_mixes_rows_with_and_without_links(store) -> None:
    table = _audience(3, "1369000", link=[TARGET, None, TARGET])
    summary = deliver_table(store, table=table, context=CONTEXT, now=NOW,
                            defaults=_defaults("9", template=None, text="福利 {link}"))  # fmt: skip
    assert summary.accepted == 2 and dict(summary.rejected) == {"no_link": 1}
    rows = _messages(store, "campaign:9:")
    assert {k: v[2] for k, v in rows.items()} == {
        k: token_for(k, SECRET) for k in ("campaign:9:+8613690000000", "campaign:9:+8613690000002")}


@SQLITE_ONLY
@pytest.mark.parametrize(("defaults", "field"), [
    (_defaults("10", template="plain", category="notification", link=TARGET),
     "link: template plain does not use"),
    (_defaults("10", template=None, text="没有位置", link=TARGET),
     r"link: the text has no \{link\}"),
    (_defaults("10", link="mailto:a@b.cn"), "link: .*not an http or https URL"),
])  # fmt: skip
def test_deliver_table_refuses_a_lost_link_before_writing(store, defaults, field) -> None:
    with pytest.raises(InputError, match=rf"table: {field}"):
        deliver_table(store, table=_audience(3, "1350000"), context=CONTEXT, now=NOW,
                      defaults=defaults)  # fmt: skip
    assert _messages(store, "campaign:10:") == {}


def test_a_token_another_message_holds_costs_a_retry_not_a_message(store) -> None:
    # Given other keys' messages holding the first tokens of three keys
    one, many, table = ("campaign:11:+8613510000001", "campaign:11:+8613510000002",
                        "campaign:12:+8613520000001")  # fmt: skip
    for i, key in enumerate((one, many, table)):
        deliver_one(store, delivery=_offer(f"holder:{i}", f"1353000000{i}"), context=CONTEXT,
                    now=NOW)  # fmt: skip
        with store.transaction() as s:
            s.execute(update(Message).where(Message.idempotency_key == f"holder:{i}")
                      .values(link_token=token_for(key, SECRET)))  # fmt: skip

    def campaign(key: str) -> Delivery:
        return _offer(key, key.rpartition(":")[2], source="campaign", source_id="11")

    # When each is delivered: alone, in a batch, in a table (COPY on PostgreSQL)
    assert deliver_one(store, delivery=campaign(one), context=CONTEXT, now=NOW).outcome == "queued"
    got = deliver_many(store, deliveries=[_offer("holder:9", "13530000009"), campaign(many)],
                       context=CONTEXT, now=NOW)  # fmt: skip
    summary = deliver_table(store, table=_audience(70, "1352000"), context=CONTEXT, now=NOW,
                            defaults=_defaults("12", link=TARGET))  # fmt: skip
    # Then every message is queued; the refused write was tried again with the next token
    # of each of its keys (the whole write: the batch's, the chunk's), which the texts carry
    assert [d.outcome for d in got] == ["queued", "queued"]
    assert (summary.accepted, summary.duplicates) == (70, 0)
    rows = {**_messages(store, "campaign:11:"), **_messages(store, "campaign:12:"),
            **_messages(store, "holder:9")}  # fmt: skip
    assert len(rows) == 73
    for key, (text, _, token, url) in rows.items():
        assert token == token_for(key, SECRET, attempt=1) and f"{PREFIX}{token}" in text
        assert url == TARGET
