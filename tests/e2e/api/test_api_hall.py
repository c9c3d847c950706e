"""The hall over the API: menus read and edited (validated as the hall validates its menu
file, written whole, picked up by the running hall), a number's conversation, the report."""

from __future__ import annotations

import pytest
import yaml
from test_api_inbox import A, seed

from jingxin.errors import ConfigError
from jingxin.hall.menu_edits import MenuSource, edits_dir, effective_menu

MENU_FILE = """\
halls:
  - service_number: "10086"
    name: 中国移动短信营业厅
    menu: |-
      回复41 免费体验
      回复YE 查余额
  - service_number: "1069009"
    tenant: acme
    name: 爱客美营业厅
    menu: 回复0查看菜单
"""

EDITED = """\
name: 中国移动短信营业厅
menu: |-
  新菜单：回复42 每日特惠
zones:
  "42": {title: 今日特惠, discount_pct: 30}
texts:
  zone.empty: "{title}暂无内容"
"""


@pytest.fixture
def hall_api(api, tmp_path):
    """The API with its own home (the edits go under it) and a menu file of two halls:
    the operator's 10086 and acme's 1069009."""
    menu = tmp_path / "menu.yaml"
    menu.write_text(MENU_FILE, encoding="utf-8")
    settings = api.settings.model_copy(update={
        "home": tmp_path, "hall": api.settings.hall.model_copy(update={"menu_path": str(menu)})})
    api.client.app.state.settings = api.settings = settings
    return api


def numbers(answer) -> list[str]:
    return [item["service_number"] for item in answer.json()["items"]]


def test_each_tenant_sees_its_own_halls_and_the_operator_all(hall_api):
    r = hall_api.as_user("analyst").get("/api/v1/hall/menus")
    assert r.status_code == 200, r.text
    assert numbers(r) == ["10086", "1069009"] and r.json()["total"] == 2
    assert r.json()["items"][0]["zones"] == [{"zone": "41", "title": "免费体验"},
                                             {"zone": "42", "title": "每日特惠"},
                                             {"zone": "43", "title": "精彩活动"}]
    assert numbers(hall_api.as_user("analyst", tenant="acme").get("/api/v1/hall/menus")) == [
        "1069009"]
    # Another tenant's hall is 404, as one that does not exist
    acme = hall_api.as_key("marketer")
    for number in ("10086", "12345"):
        assert acme.get(f"/api/v1/hall/menus/{number}").status_code == 404
        assert acme.put(f"/api/v1/hall/menus/{number}", json={"yaml": EDITED}).status_code == 404
    assert acme.get("/api/v1/hall/menus/1069009").status_code == 200


def test_a_menu_is_shown_as_yaml_and_as_parsed_json(hall_api):
    r = hall_api.as_user("analyst").get("/api/v1/hall/menus/10086")
    assert r.status_code == 200, r.text
    hall = r.json()
    assert hall["edited"] is False and hall["updated_at"] is None
    assert yaml.safe_load(hall["yaml"])["menu"] == "回复41 免费体验\n回复YE 查余额"
    assert "menu: |-" in hall["yaml"]  # a multi-line text as a literal block
    assert hall["menu"]["zones"]["42"]["discount_pct"] == 20  # defaults filled
    assert hall["menu"]["tenant"] == "operator"


def test_an_edited_menu_is_stored_served_and_picked_up_by_the_running_hall(hall_api):
    # Given the running hall's menu source (as the worker has it)
    source = MenuSource(hall_api.settings, every=0.0)
    assert source.current().hall_at("10086").menu.startswith("回复41")
    # When a marketer replaces the menu of 10086
    r = hall_api.as_user("marketer").put("/api/v1/hall/menus/10086", json={"yaml": EDITED})
    # Then it is answered with the new menu, kept as written, and audited
    assert r.status_code == 200, r.text
    assert r.json()["edited"] is True and r.json()["yaml"] == EDITED
    assert r.json()["menu"]["zones"]["42"] == {"title": "今日特惠", "limit": 10,
                                               "discount_pct": 30, "discounted_months": 3,
                                               "trial_days": None}  # fmt: skip
    assert (edits_dir(hall_api.settings) / "10086.yaml").read_text("utf-8") == EDITED
    assert [p.name for p in edits_dir(hall_api.settings).iterdir()] == ["10086.yaml"]  # no temp
    assert hall_api.as_user("analyst").get("/api/v1/hall/menus/10086").json()["yaml"] == EDITED
    # And the running hall answers with it, and so does every reader of the menu
    assert source.current().hall_at("10086").menu == "新菜单：回复42 每日特惠"
    assert effective_menu(hall_api.settings).hall_at("10086").zones["42"].discount_pct == 30
    audit = hall_api.as_user("admin").get("/api/v1/audit")
    if audit.status_code == 200:  # the accounts routes may not be there yet
        assert "hall.menu.update" in audit.text


def test_an_edit_spoiled_on_disk_is_not_used_and_says_why(hall_api):
    # Given a running hall with an edit made over the API
    client = hall_api.as_user("marketer")
    assert client.put("/api/v1/hall/menus/10086", json={"yaml": EDITED}).status_code == 200
    source = MenuSource(hall_api.settings, every=0.0)
    # When someone spoils the file by hand
    (edits_dir(hall_api.settings) / "10086.yaml").write_text("name: x\nmenu: [\n", "utf-8")
    # Then the running hall keeps the menu it had, and the API serves the menu file's hall
    # saying why the edit is not in use
    assert source.current().hall_at("10086").menu == "新菜单：回复42 每日特惠"
    hall = client.get("/api/v1/hall/menus/10086").json()
    assert hall["edited"] is False and "invalid YAML" in hall["edit_problem"]
    assert hall["menu"]["menu"].startswith("回复41")
    # And a worker starting now refuses it, naming it, as a bad menu file
    with pytest.raises(ConfigError, match="10086.yaml"):
        MenuSource(hall_api.settings)


@pytest.mark.parametrize(("text", "field", "words"), [
    ('name: x\nmenu: y\nzones:\n  "42": {title: t, discount_pct: 150}\n',
     "body.yaml.zones.42.discount_pct", "line 4"),
    ("name: x\nmenu: [unclosed\n", "body.yaml", "invalid YAML"),
    ("name: x\nmenu: y\nservice_number: '10010'\n", "body.yaml.service_number", "cannot change"),
    ("name: x\nmenu: y\ntenant: acme\n", "body.yaml.tenant", "cannot change"),
    ("name: x\nmenu: y\ncolour: red\n", "body.yaml.colour", "line 3"),
    ("name: x\nmenu: y\ntexts:\n  zone.empty: '{nope}'\n", "body.yaml.texts.zone.empty",
     "unknown field(s) {nope}"),
    ("- {name: a, menu: b}\n- {name: c, menu: d}\n", "body.yaml", "one hall"),
])  # fmt: skip
def test_an_invalid_menu_is_422_naming_field_and_line_and_nothing_changes(hall_api, text, field,
                                                                           words):
    client = hall_api.as_user("marketer")
    before = client.get("/api/v1/hall/menus/10086").json()
    r = client.put("/api/v1/hall/menus/10086", json={"yaml": text})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert field in [f["field"] for f in error["fields"]], error
    assert words in error["message"], error
    assert client.get("/api/v1/hall/menus/10086").json() == before
    assert not edits_dir(hall_api.settings).exists() or not any(
        edits_dir(hall_api.settings).iterdir())


def test_the_body_is_checked_and_the_roles_apply(hall_api):
    marketer = hall_api.as_user("marketer")
    for body in ({}, {"yaml": ""}, {"yaml": "name: x", "extra": 1}):
        assert marketer.put("/api/v1/hall/menus/10086", json=body).status_code == 422, body
    # An analyst reads but may not edit; an API client has no hall at all
    assert hall_api.as_user("analyst").put("/api/v1/hall/menus/10086",
                                           json={"yaml": EDITED}).status_code == 403
    for path in ("/api/v1/hall/menus", "/api/v1/hall/conversations?msisdn=13800000001",
                 "/api/v1/hall/report"):
        assert hall_api.as_key("api-client", tenant="operator").get(path).status_code == 403
    # acme's marketer edits acme's hall
    r = hall_api.as_key("marketer").put("/api/v1/hall/menus/1069009",
                                        json={"yaml": "name: 爱客美\nmenu: 新菜单\n"})
    assert r.status_code == 200 and r.json()["tenant"] == "acme"


def test_a_conversation_is_the_numbers_mo_and_messages_in_order_per_tenant(hall_api):
    s = seed(hall_api.store)
    # The operator's admin sees everything sent to and by the number, oldest first
    r = hall_api.as_user("admin").get("/api/v1/hall/conversations", params={"msisdn": A})
    assert r.status_code == 200, r.text
    turns = [(t["direction"], t["id"]) for t in r.json()["items"]]
    assert turns == [("mt", s.campaign_message), ("mt", s.otp), ("mt", 3), ("mt", 4),
                     ("mo", s.acme_mo), ("mt", s.acme_reply), ("mo", s.hall_mo),
                     ("mt", s.hall_reply)]  # fmt: skip
    hall_turn = r.json()["items"][6]
    assert (hall_turn["command"], hall_turn["state"], hall_turn["service_number"]) == (
        "balance", "handled", "10086")
    assert "654321" in r.text  # the admin may read a one-time code
    # acme sees its own messages and the MO attributed to them, not the operator's hall
    r = hall_api.as_key("analyst").get("/api/v1/hall/conversations",
                                       params={"msisdn": "13800000001", "limit": 3})
    assert [(t["direction"], t["id"]) for t in r.json()["items"]] == [
        ("mt", 3), ("mo", s.acme_mo), ("mt", s.acme_reply)]
    # An analyst sees numbers masked and no one-time code
    r = hall_api.as_user("analyst").get("/api/v1/hall/conversations", params={"msisdn": A})
    assert r.json()["msisdn"] == "+861380000****"
    assert "654321" not in r.text and "13912345678" not in r.text
    assert hall_api.as_user("admin").get("/api/v1/hall/conversations").status_code == 422


def test_the_report_is_the_tenants_own(hall_api):
    seed(hall_api.store)
    r = hall_api.as_user("analyst").get("/api/v1/hall/report", params={"months": 1})
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["tenant_id"], report["users"], report["kinds"]) == (None, 2, {
        "other": 1, "query": 1})
    r = hall_api.as_key("analyst").get("/api/v1/hall/report")
    assert (r.json()["tenant_id"], r.json()["users"]) == ("acme", 1)
    assert hall_api.as_key("analyst").get("/api/v1/hall/report",
                                          params={"tenant": "operator"}).status_code == 404
    r = hall_api.as_user("analyst").get("/api/v1/hall/report", params={"tenant": "acme"})
    assert r.json()["users"] == 1
