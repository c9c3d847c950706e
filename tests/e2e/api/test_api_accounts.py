"""Accounts over the API: log-in (cookie, throttle, expiry), log-out, tenants, users, API
keys and the audit log - each with a role that may and one that may not, and another
tenant's ids answering 404 as if they did not exist."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from jingxin.access.logins import LoginThrottle
from jingxin.api.auth import SESSION_COOKIE
from jingxin.data.store.models import ApiKey, AuditEntry, ConsoleSession, User, utc_now

PASSWORD = "correct horse battery"  # the seeded users' (conftest.PASSWORD)

V1 = "/api/v1"


def login(api, username: str, password: str = PASSWORD):
    return api.client.post(f"{V1}/auth/login", json={"username": username, "password": password})


def entries(api, action: str, object_type: str) -> list[AuditEntry]:
    with api.store.transaction() as session:
        return list(session.scalars(select(AuditEntry).where(
            AuditEntry.action == action, AuditEntry.object_type == object_type)))


def user_id(api, username: str) -> int:
    with api.store.transaction() as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def key_row(api, prefix: str) -> ApiKey:
    with api.store.transaction() as session:
        return session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one()


def error(r) -> str:
    return r.json()["error"]["message"]


# ----------------------------------------------------------------------------- log-in


def test_login_sets_an_httponly_cookie_and_answers_the_csrf_token(api):
    # Given the acme marketer's name and password
    # When they log in
    r = login(api, "ACME-marketer")  # names are case-insensitive
    # Then the cookie is HttpOnly, SameSite=Lax, not Secure (secure_cookies is off)
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and "secure" not in cookie.lower().replace(
        "samesite", "")
    body = r.json()
    assert body["user"] == {"username": "acme-marketer", "display_name": "acme-marketer",
                            "role": "marketer", "tenant": "acme"}  # fmt: skip
    # And the session works, with the CSRF token on unsafe methods
    assert api.client.get(f"{V1}/me").json()["tenant"] == "acme"
    r = api.client.post(f"{V1}/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert r.status_code == 204
    # And the log-in is in acme's audit log
    [entry] = entries(api, "login", "user")
    assert (entry.actor, entry.tenant_id) == ("user:acme-marketer", "acme")


def test_secure_cookies_setting_marks_the_cookie_secure(api):
    app = api.client.app
    settings = app.state.settings
    app.state.settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"secure_cookies": True})})
    try:
        r = login(api, "operator-admin")
    finally:
        app.state.settings = settings
    assert r.status_code == 200
    assert "; secure" in r.headers["set-cookie"].lower()


def test_wrong_password_unknown_name_and_disabled_account_get_the_same_401(api):
    with api.store.transaction() as session:
        session.scalars(select(User).where(User.username == "acme-analyst")).one().disabled = True
    for name, password in [("acme-admin", "wrong password!"), ("nobody-here", PASSWORD),
                           ("acme-analyst", PASSWORD)]:  # fmt: skip
        r = login(api, name, password)
        assert r.status_code == 401, name
        assert error(r) == "wrong username or password"
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    # Failures against existing accounts are audited (nothing for the unknown name)
    failed = entries(api, "login_failed", "user")
    assert sorted((e.actor, e.detail["reason"]) for e in failed) == [
        ("user:acme-admin", "wrong password"), ("user:acme-analyst", "disabled")]
    assert all(PASSWORD not in str(e.detail) for e in failed)


def test_repeated_failures_are_throttled_per_username(api):
    # Given a throttle on a clock the test moves
    now = [1000.0]
    api.client.app.state.login_throttle = LoginThrottle(clock=lambda: now[0])
    # When five wrong passwords are tried for one name
    for _ in range(5):
        assert login(api, "operator-admin", "not the password").status_code == 401
    # Then even the right password is refused for a while, saying when to retry
    r = login(api, "operator-admin")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "300"
    assert "too many failed log-ins" in error(r)
    # And another name is not affected
    assert login(api, "operator-analyst").status_code == 200
    # And once the failures age out, the right password works again
    now[0] += 301
    assert login(api, "operator-admin").status_code == 200


def test_a_success_clears_the_failures(api):
    api.client.app.state.login_throttle = LoginThrottle()
    for _ in range(4):
        login(api, "acme-admin", "nope nope nope")
    assert login(api, "acme-admin").status_code == 200
    for _ in range(4):
        login(api, "acme-admin", "nope nope nope")
    assert login(api, "acme-admin").status_code == 200


def test_login_body_is_validated(api):
    r = api.client.post(f"{V1}/auth/login", json={"username": "acme-admin"})
    assert r.status_code == 422 and "body.password" in error(r)
    r = api.client.post(f"{V1}/auth/login", json={"username": "a", "password": "x", "role": "x"})
    assert r.status_code == 422 and "body.role" in error(r)


def test_an_expired_session_is_refused(api):
    # Given a logged-in session whose expiry has passed
    assert login(api, "operator-marketer").status_code == 200
    with api.store.transaction() as session:
        for row in session.scalars(select(ConsoleSession)):
            row.expires_at = utc_now() - timedelta(seconds=1)
    # Then the cookie no longer works
    r = api.client.get(f"{V1}/me")
    assert r.status_code == 401 and "expired" in error(r)


def test_logout_closes_the_session_even_if_the_cookie_is_kept(api):
    client = api.as_user("analyst", tenant="acme")
    token = client.cookies.get(SESSION_COOKIE)
    r = client.post(f"{V1}/auth/logout")
    assert r.status_code == 204
    assert f'{SESSION_COOKIE}=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers[
        "set-cookie"]  # fmt: skip
    client.cookies.set(SESSION_COOKIE, token)  # a browser that ignored the deletion
    assert client.get(f"{V1}/me").status_code == 401
    [entry] = entries(api, "logout", "user")
    assert entry.actor == "user:acme-analyst"


def test_logout_needs_the_csrf_token_and_a_session(api):
    client = api.as_user("analyst")
    del client.headers["X-CSRF-Token"]
    r = client.post(f"{V1}/auth/logout")
    assert r.status_code == 403 and "CSRF" in error(r)
    r = api.as_key("admin").post(f"{V1}/auth/logout")
    assert r.status_code == 400 and "DELETE /api/v1/keys" in error(r)
    assert api.client.post(f"{V1}/auth/logout").status_code == 401


# ----------------------------------------------------------------------------- tenants


def test_tenants_are_listed_to_the_operator_and_to_an_enterprise_its_own(api):
    r = api.as_user("analyst").get(f"{V1}/tenants")
    assert r.status_code == 200
    assert [t["id"] for t in r.json()["items"]] == ["acme", "operator"]
    r = api.as_key("admin", tenant="acme").get(f"{V1}/tenants")
    assert [t["id"] for t in r.json()["items"]] == ["acme"] and r.json()["total"] == 1
    r = api.as_user("marketer", tenant="acme").get(f"{V1}/tenants/acme")
    assert r.status_code == 200 and r.json()["signature"] == "【爱客美】"
    for tenant_id in ("operator", "nope"):
        r = api.as_user("admin", tenant="acme").get(f"{V1}/tenants/{tenant_id}")
        assert r.status_code == 404 and error(r) == f"no tenant {tenant_id}"
    assert api.as_user("auditor").get(f"{V1}/tenants/acme").status_code == 200


def test_the_operators_admin_adds_a_tenant(api):
    body = {"id": "beta-shop", "name": "Beta 商城", "signature": "【贝塔】", "timezone": "Asia/Urumqi"}
    r = api.as_user("admin").post(f"{V1}/tenants", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["implied_consent"] is False and r.json()["timezone"] == "Asia/Urumqi"
    assert api.as_key("admin", tenant="operator").get(f"{V1}/tenants/beta-shop").status_code == 200
    # A second time: 409
    r = api.as_user("admin").post(f"{V1}/tenants", json=body)
    assert r.status_code == 409 and "already a tenant 'beta-shop'" in error(r)
    [entry] = entries(api, "create", "tenant")
    assert (entry.object_id, entry.actor) == ("beta-shop", "user:operator-admin")


def test_only_the_operators_admin_adds_tenants(api):
    body = {"id": "gamma", "name": "Gamma", "signature": "【伽马】"}
    for client in (api.as_user("admin", tenant="acme"), api.as_user("marketer"),
                   api.as_key("admin", tenant="acme")):  # fmt: skip
        r = client.post(f"{V1}/tenants", json=body)
        assert r.status_code == 403 and "tenants.manage" in error(r)


def test_a_bad_tenant_is_422_naming_the_field(api):
    admin = api.as_user("admin")
    good = {"id": "delta", "name": "Delta", "signature": "【德尔塔】"}
    cases = [({"id": "Delta!"}, "body.id", "lower-case"),
             ({"id": "9lives"}, "body.id", "starting with a letter"),
             ({"signature": "德尔塔"}, "body.signature", "【】"),
             ({"signature": "【德】"}, "body.signature", "2-20 characters"),
             ({"timezone": "Mars/Olympus"}, "body.timezone", "not a time zone"),
             ({"name": "   "}, "body.name", "1-200 characters"),
             ({"colour": "red"}, "body.colour", "Extra inputs")]  # fmt: skip
    for change, field, words in cases:
        r = admin.post(f"{V1}/tenants", json={**good, **change})
        assert r.status_code == 422, change
        assert r.json()["error"]["fields"][0]["field"] == field, change
        assert words in error(r), (change, error(r))
    assert admin.get(f"{V1}/tenants/delta").status_code == 404  # nothing half-made


# ----------------------------------------------------------------------------- users


def test_users_are_listed_per_tenant_without_hashes(api):
    r = api.as_user("admin", tenant="acme").get(f"{V1}/users")
    assert r.status_code == 200
    users = r.json()["items"]
    assert {u["tenant"] for u in users} == {"acme"} and r.json()["total"] == 6
    assert all("password" not in key for u in users for key in u)
    assert "argon2" not in r.text
    r = api.as_key("admin").get(f"{V1}/users", params={"limit": 2, "offset": 1})
    assert [u["username"] for u in r.json()["items"]] == ["acme-analyst", "acme-api-client"]
    # The operator's admin may look into a tenant; an enterprise may not look out of its own
    r = api.as_user("admin").get(f"{V1}/users", params={"tenant": "acme"})
    assert {u["tenant"] for u in r.json()["items"]} == {"acme"}
    r = api.as_user("admin", tenant="acme").get(f"{V1}/users", params={"tenant": "operator"})
    assert r.status_code == 404
    for role in ("marketer", "auditor", "api-client"):
        assert api.as_key(role).get(f"{V1}/users").status_code == 403, role


def test_an_admin_adds_a_user_who_can_then_log_in(api):
    r = api.as_user("admin", tenant="acme").post(f"{V1}/users", json={
        "username": "Li.Wei", "password": "a long enough one", "role": "marketer",
        "display_name": "李伟"})  # fmt: skip
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["username"], made["tenant"], made["role"]) == ("li.wei", "acme", "marketer")
    assert "password" not in str(made.keys())
    assert login(api, "li.wei", "a long enough one").json()["user"]["display_name"] == "李伟"
    [entry] = entries(api, "create", "user")
    assert entry.tenant_id == "acme" and entry.detail["username"] == "li.wei"
    assert "a long enough one" not in str(entry.detail)


def test_users_in_another_tenant_only_for_the_operators_admin(api):
    body = {"username": "zhang", "password": "a long enough one", "role": "analyst"}
    r = api.as_user("admin", tenant="acme").post(f"{V1}/users", json={**body, "tenant": "operator"})
    assert r.status_code == 404
    r = api.as_user("admin").post(f"{V1}/users", json={**body, "tenant": "acme"})
    assert r.status_code == 201 and r.json()["tenant"] == "acme"
    r = api.as_user("marketer").post(f"{V1}/users", json=body)
    assert r.status_code == 403


def test_bad_users_are_422_and_a_taken_name_409(api):
    admin = api.as_user("admin", tenant="acme")
    good = {"username": "wang", "password": "a long enough one", "role": "analyst"}
    for change, field in [({"password": "short"}, "body.password"),
                          ({"role": "boss"}, "body.role"),
                          ({"username": "-bad name"}, "body.username"),
                          ({"tenant": "nope"}, None)]:  # fmt: skip
        r = admin.post(f"{V1}/users", json={**good, **change})
        expected = 404 if field is None else 422
        assert r.status_code == expected, (change, r.text)
        if field:
            assert r.json()["error"]["fields"][0]["field"] == field, change
    r = admin.post(f"{V1}/users", json={**good, "username": "operator-admin"})
    assert r.status_code == 409 and "taken" in error(r)


def test_an_admin_changes_a_users_role_and_password(api):
    # Given the acme reviewer with an open session
    reviewer = api.as_user("reviewer", tenant="acme")
    assert reviewer.get(f"{V1}/me").status_code == 200
    target = user_id(api, "acme-reviewer")
    # When the acme admin makes them an analyst with a new password
    r = api.as_user("admin", tenant="acme").patch(f"{V1}/users/{target}", json={
        "role": "analyst", "password": "a brand new secret", "display_name": "Rev"})
    # Then the change shows, their sessions are closed, the new password works
    assert r.status_code == 200, r.text
    assert (r.json()["role"], r.json()["display_name"]) == ("analyst", "Rev")
    assert reviewer.get(f"{V1}/me").status_code == 401
    assert login(api, "acme-reviewer").status_code == 401
    assert login(api, "acme-reviewer", "a brand new secret").json()["user"]["role"] == "analyst"
    [entry] = entries(api, "update", "user")
    assert entry.detail == {"username": "acme-reviewer", "role": "analyst",
                            "display_name": "Rev", "password": "changed"}  # fmt: skip


def test_disabling_a_user_ends_their_sessions_and_enabling_lets_them_back(api):
    analyst = api.as_user("analyst", tenant="acme")
    target = user_id(api, "acme-analyst")
    admin = api.as_key("admin", tenant="acme")
    assert admin.patch(f"{V1}/users/{target}", json={"disabled": True}).json()["disabled"]
    assert analyst.get(f"{V1}/me").status_code == 401
    assert login(api, "acme-analyst").status_code == 401
    assert admin.patch(f"{V1}/users/{target}", json={"disabled": False}).status_code == 200
    assert login(api, "acme-analyst").status_code == 200


def test_an_admin_cannot_lock_themselves_out(api):
    me = user_id(api, "acme-admin")
    admin = api.as_user("admin", tenant="acme")
    r = admin.patch(f"{V1}/users/{me}", json={"disabled": True})
    assert r.status_code == 409 and "cannot disable your own account" in error(r)
    r = admin.patch(f"{V1}/users/{me}", json={"role": "marketer"})
    assert r.status_code == 409 and "own admin role" in error(r)
    # Their own password, though, they may change without being logged out
    r = admin.patch(f"{V1}/users/{me}", json={"password": "my own new secret"})
    assert r.status_code == 200 and admin.get(f"{V1}/me").status_code == 200


def test_users_of_another_tenant_cannot_be_changed(api):
    victim = user_id(api, "operator-analyst")
    r = api.as_user("admin", tenant="acme").patch(f"{V1}/users/{victim}", json={"disabled": True})
    assert r.status_code == 404 and error(r) == f"no user {victim}"
    assert api.as_user("admin", tenant="acme").patch(
        f"{V1}/users/999999", json={"disabled": True}).json() == r.json() | {
        "error": r.json()["error"] | {"message": "no user 999999"}}  # fmt: skip
    r = api.as_user("marketer", tenant="acme").patch(
        f"{V1}/users/{user_id(api, 'acme-analyst')}", json={"disabled": True})
    assert r.status_code == 403
    r = api.as_user("admin").patch(f"{V1}/users/{victim}", json={})
    assert r.status_code == 422 and "at least one of" in error(r)
    r = api.as_user("admin").patch(f"{V1}/users/{victim}", json={"password": "short"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "body.password"


def test_csrf_is_needed_on_a_post_with_a_session(api):
    client = api.as_user("admin")
    del client.headers["X-CSRF-Token"]
    body = {"username": "nocsrf", "password": "a long enough one", "role": "analyst"}
    r = client.post(f"{V1}/users", json=body)
    assert r.status_code == 403 and "CSRF" in error(r)


# ----------------------------------------------------------------------------- keys


def test_keys_are_listed_per_tenant_without_their_secret(api):
    r = api.as_user("admin", tenant="acme").get(f"{V1}/keys")
    assert r.status_code == 200
    keys = r.json()["items"]
    assert r.json()["total"] == 6 and {k["tenant"] for k in keys} == {"acme"}
    assert all(set(k) == {"id", "prefix", "name", "role", "tenant", "rate_per_second",
                          "created_by", "created_at", "expires_at", "revoked_at",
                          "last_used_at"} for k in keys)  # fmt: skip
    assert all(secret.split("_", 2)[2] not in r.text for secret in api.keys.values())
    r = api.as_user("admin", tenant="acme").get(f"{V1}/keys", params={"tenant": "operator"})
    assert r.status_code == 404
    assert api.as_user("auditor", tenant="acme").get(f"{V1}/keys").status_code == 403


def test_a_new_key_is_shown_once_and_works(api):
    r = api.as_user("admin", tenant="acme").post(f"{V1}/keys", json={
        "name": "CRM", "rate_per_second": 20, "expires_in_days": 30})  # fmt: skip
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["key"].startswith(f"jx_{made['prefix']}_")
    assert (made["role"], made["rate_per_second"], made["tenant"]) == ("api-client", 20, "acme")
    assert made["created_by"] == "user:acme-admin" and made["expires_at"] is not None
    me = api.client.get(f"{V1}/me", headers={"Authorization": f"Bearer {made['key']}"})
    assert me.json() | {"permissions": None} == {"tenant": "acme", "role": "api-client",
                                                 "actor": f"key:{made['prefix']}",
                                                 "permissions": None}  # fmt: skip
    listed = api.as_user("admin", tenant="acme").get(f"{V1}/keys").json()["items"][0]
    assert listed["prefix"] == made["prefix"] and "key" not in listed
    assert listed["last_used_at"] is not None
    [entry] = entries(api, "create", "api_key")
    assert entry.detail["prefix"] == made["prefix"] and made["key"] not in str(entry.detail)


def test_the_default_rate_and_keys_for_another_tenant(api):
    r = api.as_user("admin").post(f"{V1}/keys", json={"name": "ops", "tenant": "acme"})
    assert r.status_code == 201 and r.json()["tenant"] == "acme"
    assert r.json()["rate_per_second"] == api.settings.api.key_rate_per_second
    r = api.as_user("admin", tenant="acme").post(f"{V1}/keys", json={"name": "x",
                                                                    "tenant": "operator"})
    assert r.status_code == 404
    assert api.as_key("marketer").post(f"{V1}/keys", json={"name": "x"}).status_code == 403


def test_bad_keys_are_422(api):
    admin = api.as_user("admin")
    for change, field in [({"name": ""}, "body.name"), ({"rate_per_second": 0},
                          "body.rate_per_second"), ({"expires_in_days": 0}, "body.expires_in_days"),
                          ({"role": "root"}, "body.role"), ({"secret": "x"}, "body.secret")]:
        r = admin.post(f"{V1}/keys", json={"name": "k", **change})
        assert r.status_code == 422, change
        assert r.json()["error"]["fields"][0]["field"] == field, change
    r = admin.post(f"{V1}/keys", json={"name": "   "})
    assert r.status_code == 422 and "give the key a name" in error(r)


def test_a_revoked_key_is_refused_at_once(api):
    # Given a key that has just been used (so the API has it cached)
    client = api.as_key("api-client", tenant="acme")
    assert client.get(f"{V1}/me").status_code == 200
    prefix = api.keys[("acme", "api-client")].split("_")[1]
    key_id = key_row(api, prefix).id
    # When the acme admin revokes it
    r = api.as_user("admin", tenant="acme").delete(f"{V1}/keys/{key_id}")
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    # Then the next request with it is 401 "revoked"
    r = client.get(f"{V1}/me")
    assert r.status_code == 401 and "revoked" in error(r)
    # And revoking again changes nothing (one audit entry)
    assert api.as_user("admin", tenant="acme").delete(f"{V1}/keys/{key_id}").status_code == 200
    [entry] = entries(api, "revoke", "api_key")
    assert entry.detail["prefix"] == prefix and entry.tenant_id == "acme"


def test_keys_of_another_tenant_cannot_be_revoked(api):
    prefix = api.keys[("operator", "api-client")].split("_")[1]
    key_id = key_row(api, prefix).id
    r = api.as_user("admin", tenant="acme").delete(f"{V1}/keys/{key_id}")
    assert r.status_code == 404 and error(r) == f"no API key {key_id}"
    assert api.as_user("admin", tenant="acme").delete(f"{V1}/keys/999999").status_code == 404
    assert api.as_user("marketer").delete(f"{V1}/keys/{key_id}").status_code == 403
    assert api.as_key("api-client", tenant="operator").get(f"{V1}/me").status_code == 200


def test_an_expired_key_is_refused(api):
    made = api.as_user("admin", tenant="acme").post(f"{V1}/keys", json={
        "name": "short-lived", "expires_in_days": 1}).json()  # fmt: skip
    with api.store.transaction() as session:
        row = session.get(ApiKey, made["id"])
        row.expires_at = utc_now() - timedelta(minutes=1)
    r = api.client.get(f"{V1}/me", headers={"X-API-Key": made["key"]})
    assert r.status_code == 401 and "expired" in error(r)


# ----------------------------------------------------------------------------- audit


def test_the_audit_log_is_the_callers_tenants(api):
    # Given changes in both tenants
    api.as_user("admin", tenant="acme").post(f"{V1}/keys", json={"name": "acme key"})
    api.as_user("admin").post(f"{V1}/keys", json={"name": "operator key"})
    api.as_user("admin").post(f"{V1}/tenants", json={"id": "zeta", "name": "Z",
                                                     "signature": "【泽塔】"})  # fmt: skip
    # Then each tenant's auditor sees its own
    r = api.as_user("auditor", tenant="acme").get(f"{V1}/audit")
    assert r.status_code == 200
    assert [(e["action"], e["object_type"], e["detail"]["name"]) for e in r.json()["items"]] == [
        ("create", "api_key", "acme key")]
    r = api.as_key("auditor", tenant="operator").get(f"{V1}/audit", params={"object_type": "tenant"})
    assert [e["object_id"] for e in r.json()["items"]] == ["zeta"] and r.json()["total"] == 1
    # And the operator's auditor may look into a tenant; acme's may not look out
    r = api.as_user("auditor").get(f"{V1}/audit", params={"tenant": "acme"})
    assert [e["tenant"] for e in r.json()["items"]] == ["acme"]
    r = api.as_user("auditor", tenant="acme").get(f"{V1}/audit", params={"tenant": "operator"})
    assert r.status_code == 404
    assert api.as_user("marketer").get(f"{V1}/audit").status_code == 403


def test_the_audit_log_pages(api):
    admin = api.as_user("admin")
    for n in range(3):
        admin.post(f"{V1}/keys", json={"name": f"k{n}"})
    r = admin.get(f"{V1}/audit", params={"limit": 1, "offset": 1, "object_type": "api_key"})
    assert r.json()["total"] == 3
    assert [e["detail"]["name"] for e in r.json()["items"]] == ["k1"]
    r = admin.get(f"{V1}/audit", params={"limit": 501})
    assert r.status_code == 422 and "limit" in error(r)
