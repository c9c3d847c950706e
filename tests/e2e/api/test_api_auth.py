"""Authentication and roles at the door: keys, sessions, CSRF, 401/403, error shapes."""

from __future__ import annotations


def test_no_credentials_is_401(api):
    r = api.client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "API key" in r.json()["error"]["message"]


def test_bad_keys_say_why(api):
    for header, words in [("Bearer jx_nope", "malformed"), ("Bearer jx_ABCDEFGH_zz", "not known"),
                          ("Basic abc", "Bearer")]:  # fmt: skip
        r = api.client.get("/api/v1/me", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert words in r.json()["error"]["message"]


def test_every_role_key_and_session_authenticates(api):
    from jingxin.access.roles import ROLES

    for role in ROLES:
        r = api.as_key(role).get("/api/v1/me")
        assert r.status_code == 200, (role, r.text)
        assert (r.json()["tenant"], r.json()["role"]) == ("acme", role)
        r = api.as_user(role).get("/api/v1/me")
        assert r.status_code == 200 and r.json()["tenant"] == "operator"
