"""The API against its own OpenAPI spec (schemathesis): for every operation, generated
requests - valid and invalid - as the operator's admin must never answer 5xx, and every
answer must be one the spec declares (status, content type, body schema); a request
without credentials must be refused where the spec says credentials are needed; a method
the spec does not list answers 405 with an Allow header that lists the ones it does. And
for the operations the fuzzer rarely gets a 2xx from, a request that succeeds (GOOD).

Bounded and reproducible: 10 examples per operation plus schemathesis' coverage cases,
``derandomize=True`` (the same cases every run), one app and store for the whole module
with one of everything of the operator's (:mod:`seeded`), about 25 s in all. The spec is
read at import (one test per operation needs it at collection) from an app on a
throwaway store; the requests go in-process to the module's app (:class:`Forward`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.mutations import OperatorKind
from schemathesis.generation.meta import CoverageScenario
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from jingxin.access.keys import create_key
from jingxin.api import create_app
from jingxin.config import Settings, StoreSettings, WarehouseSettings
from jingxin.data.store import open_store
from tests.e2e.api.conftest import PASSWORD, Api, make_api
from tests.e2e.api.seeded import (
    FENCE,
    MARKER,
    TEMPLATE,
    Objects,
    build_warehouse,
    campaign_spec,
    seed,
)

# Operations not fuzzed, each with why:
EXCLUDED = {
    # Makes a real outbound HTTP call to the callback URL (with a timeout of seconds).
    ("POST", "/api/v1/callbacks/test"),
}


def _spec() -> dict:
    store = open_store("sqlite://")
    try:
        return create_app(Settings(store=StoreSettings(url="sqlite://")), store=store).openapi()
    finally:
        store.dispose()


class Forward:
    """The ASGI app schemathesis calls: forwards HTTP to the module fixture's app. It has
    no lifespan (the fixture runs the real one), which it says by refusing the scope. An
    error after the app answered (Starlette re-raises what made a 500) stays here, as in a
    server: the 500 is the finding, checked like any answer."""

    target: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError(f"no {scope['type']} here")
        answered = False

        async def sent(message: dict[str, Any]) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.target(scope, receive, sent)
        except Exception:
            if not answered:
                raise


FORWARD = Forward()
full = schemathesis.openapi.from_dict(_spec())
full.app = FORWARD  # in-process, also for the checks' own probes (e.g. without credentials)
schema = full
for _method, _path in sorted(EXCLUDED):
    schema = schema.exclude(method=_method, path=_path)


@dataclass
class Fuzzed:
    api: Api
    key: str  # the operator admin's key the fuzzer calls with
    key_id: int
    objects: Objects


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, migrated_templates) -> Iterator[Fuzzed]:
    """One app and store for the module (a fresh one per case would take minutes), with
    one of everything of the operator's (so some ids the fuzzer tries exist)."""
    home = tmp_path_factory.mktemp("schemathesis")
    path = home / "jingxin.db"
    shutil.copyfile(migrated_templates["sqlite"], path)
    warehouse = WarehouseSettings(path=str(build_warehouse(home / "wh.duckdb")))
    made, client = make_api(f"sqlite:///{path}", home=home, warehouse=warehouse)
    with made.store.transaction() as session:
        row, key = create_key(session, tenant_id="operator", name="schemathesis",
                              role="admin", rate_per_second=100_000.0)  # fmt: skip
        session.flush()
        key_id = row.id
    with client:  # runs the lifespan (click recorder) around the module
        objects = seed(made, home=home)
        FORWARD.target = client.app
        yield Fuzzed(made, key, key_id, objects)
        FORWARD.target = None
    made.store.dispose()


# This app has no probes configured: the route says so with 503, which is right. Any
# other 5xx fails.
UNAVAILABLE_HERE = {
    "POST /api/v1/probes/run": "probes in the settings",
}


def no_server_error(ctx, response, case) -> bool | None:
    """not_a_server_error, but for the 503s of UNAVAILABLE_HERE."""
    if response.status_code == 503 and case.operation.label in UNAVAILABLE_HERE:
        return None
    return not_a_server_error(ctx, response, case)


def rejects_invalid_input(ctx, response, case) -> bool | None:
    """negative_data_rejection, but for a value of another type alone: pydantic's lax mode
    takes 0/1 or "true" for a boolean, "5" for an integer, a number for a date-time - by
    design (the same models read YAML and TOML files); and a query parameter given more than
    once, where Starlette takes the last value, as web frameworks do."""
    if any(isinstance(value, list) for value in (case.query or {}).values()):
        return None
    data = case.meta.phase.data if case.meta is not None else None
    scenario = getattr(data, "scenario", None)
    mutations = getattr(data, "mutations", ())
    if scenario == CoverageScenario.INCORRECT_TYPE or (
            mutations and all(m.operator == OperatorKind.CHANGE_TYPE for m in mutations)):
        return None
    return negative_data_rejection(ctx, response, case)


# Checks not run, each with why:
SKIPPED_CHECKS = [
    # Replaced by no_server_error and rejects_invalid_input above.
    not_a_server_error,
    negative_data_rejection,
    # "A schema-valid request must not be refused": the domain refuses more than a JSON schema
    # can say (a template not approved, a time in the past, an unknown number), with 4xx.
    positive_data_acceptance,
]


# Bugs found here in routes still being written elsewhere: the check is skipped for that
# operation until the route is fixed (then delete the entry).
#
KNOWN_BUGS: dict[str, list[Any]] = {}
# Cases not sent (a route that would answer 500 to them, until it is fixed).
KNOWN_500: dict[str, Callable[[Any], bool]] = {}


def _as_admin(fuzzed: Fuzzed) -> Any:
    return fuzzed.api.as_key("admin", tenant="operator")


def _new_campaign(fuzzed: Fuzzed) -> int:
    r = _as_admin(fuzzed).post("/api/v1/campaigns", json={"spec": campaign_spec("again")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _submitted_template(fuzzed: Fuzzed, code: str) -> int:
    admin = _as_admin(fuzzed)
    r = admin.post("/api/v1/templates", json={"code": code, "category": "notification",
                                              "body": f"{MARKER}，您好。"})  # fmt: skip
    assert r.status_code == 201, r.text
    made = r.json()["id"]
    assert admin.post(f"/api/v1/templates/{made}/submit").status_code == 200
    return made


def _new_fence(fuzzed: Fuzzed, code: str) -> int:
    r = _as_admin(fuzzed).post("/api/v1/fences", json={**FENCE, "code": code})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _hall_yaml(fuzzed: Fuzzed) -> str:
    return _as_admin(fuzzed).get("/api/v1/hall/menus/10086").json()["yaml"]


MESSAGE = {"msisdn": "+8613900000001", "category": "notification", "template": TEMPLATE.code,
           "variables": {"name": "王", "amount": 1.5}}  # fmt: skip
# Requests that succeed, for the operations the fuzzer rarely gets a 2xx from: their
# answers are held to the spec too. Each makes what it needs first (the fuzzer may have
# changed the seed). Not here: POST /auth/logout (a console session's, not a key's), POST
# /probes/run (no probes configured) and the EXCLUDED ones.
GOOD: dict[str, Callable[[Fuzzed], dict[str, Any]]] = {
    "GET /api/v1/experiments/{kind}/{name}": lambda f: {
        "path_parameters": {"kind": "campaign", "name": str(f.objects.campaign)}},
    "GET /api/v1/hall/menus/{service_number}": lambda f: {
        "path_parameters": {"service_number": "10086"}},
    "GET /api/v1/journeys/{journey}": lambda f: {"path_parameters": {"journey": "birthday"}},
    "GET /api/v1/messages/{message_id}": lambda f: {
        "path_parameters": {"message_id": f.objects.message}},
    "GET /api/v1/tenants/{tenant_id}": lambda f: {"path_parameters": {"tenant_id": "acme"}},
    "POST /api/v1/auth/login": lambda f: {"body": {"username": f.api.username("analyst"),
                                                   "password": PASSWORD}},
    "POST /api/v1/campaigns": lambda f: {"body": {"spec": campaign_spec("good")}},
    "POST /api/v1/campaigns/preview": lambda f: {"body": {"spec": campaign_spec("good")}},
    "POST /api/v1/campaigns/{campaign_id}/schedule": lambda f: {
        "path_parameters": {"campaign_id": _new_campaign(f)}},
    "POST /api/v1/fences": lambda f: {"body": {**FENCE, "code": "good-new"}},
    "PUT /api/v1/fences/{fence_id}": lambda f: {
        "path_parameters": {"fence_id": _new_fence(f, "good-put")},
        "body": {**FENCE, "code": "good-put", "name": "改名"}},
    "POST /api/v1/send": lambda f: {"body": {**MESSAGE, "idempotency_key": "good-1"}},
    "POST /api/v1/send/batch": lambda f: {"body": {"messages": [
        {**MESSAGE, "idempotency_key": "good-2"}, {**MESSAGE, "idempotency_key": "good-3"}]}},
    "POST /api/v1/templates/{template_id}/reject": lambda f: {
        "path_parameters": {"template_id": _submitted_template(f, "good.reject")},
        "body": {"reason": "太长"}},
    "POST /api/v1/templates/{template_id}/withdraw": lambda f: {
        "path_parameters": {"template_id": _submitted_template(f, "good.withdraw")}},
    "POST /api/v1/tenants": lambda f: {"body": {"id": "beta", "name": "贝塔",
                                                "signature": "【贝塔】"}},
    "PUT /api/v1/hall/menus/{service_number}": lambda f: {
        "path_parameters": {"service_number": "10086"}, "body": {"yaml": _hall_yaml(f)}},
}


@pytest.mark.parametrize("label", sorted(GOOD))
def test_good_requests_succeed_as_the_spec_says(label, fuzzed: Fuzzed) -> None:
    method, path = label.split(" ", 1)
    case = full[path][method].Case(**GOOD[label](fuzzed))
    response = case.call_and_validate(headers={"Authorization": f"Bearer {fuzzed.key}"},
                                      excluded_checks=SKIPPED_CHECKS,
                                      additional_checks=[no_server_error])  # fmt: skip
    assert 200 <= response.status_code < 300, response.text


@schema.parametrize()
@settings(max_examples=10, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_the_api_keeps_to_its_spec(case, fuzzed: Fuzzed) -> None:
    known = KNOWN_500.get(case.operation.label)
    if known is not None and known(case):
        return
    if case.path_parameters and case.path_parameters.get("key_id") == fuzzed.key_id:
        # Revoking the fuzzer's own key would turn every later case into a 401.
        case.path_parameters["key_id"] = fuzzed.key_id + 1_000
    skipped = SKIPPED_CHECKS + KNOWN_BUGS.get(case.operation.label, [])
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzzed.key}"},
                           excluded_checks=skipped,
                           additional_checks=[no_server_error, rejects_invalid_input])
