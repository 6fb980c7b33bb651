"""Every endpoint against every kind of caller: no party reads what it was not granted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from linkage_unit.client import UnitClient
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import PARTNERS, Encoded, project_body

Check = Callable[[httpx.Response], None]
#: A well-formed withdrawal body (so that the route's checks, not validation, answer).
WITHDRAWAL = {"record_keys": ["0" * 32]}


def _status(*codes: int) -> Check:
    def check(response: httpx.Response) -> None:
        assert response.status_code in codes, (response.status_code, response.text[:300])

    return check


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every endpoint of ``app``, also those of included routers.

    FastAPI >= 0.165 lists an included router as one wrapper route.
    """
    out: list[APIRoute] = []
    for route in app.routes:
        inner = getattr(route, "original_router", None)
        out += [r for r in (inner.routes if inner is not None else [route])
                if isinstance(r, APIRoute)]  # fmt: skip
    return out


def test_authorization_matrix(unit: EmbeddedUnit, encoded: Encoded) -> None:
    policy = {"grants": {"skills_agency": ["mapping", "counts", "flags:benefits_dept"],
                         "council": ["counts"]}}  # fmt: skip
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project(project_body(encoded.schema, policy=policy))
        other = admin.create_project(project_body(encoded.schema, parties=["x", "y"]))
        spare = admin.create_project(project_body(encoded.schema))["project_id"]
    pid, tokens = created["project_id"], created["parties"]
    uploads = {}
    for name in PARTNERS:
        with UnitClient(unit.url, tokens[name]) as party:
            uploads[name] = party.upload(pid, encoded.partners[name].plk)["id"]
    with UnitClient(unit.url, unit.admin_token) as admin:
        run = admin.start_run(pid, 0.8)
        assert admin.wait(pid, run["id"], poll=0.05, timeout=120)["status"] == "done"
    callers: dict[str, str | None] = {
        "admin": unit.admin_token, **{n: tokens[n] for n in PARTNERS},
        "none": None, "other_project": other["parties"]["x"], "forged": "x" * 43,
    }  # fmt: skip
    ok, denied, anon = _status(200), _status(403), _status(401)

    def only_own_projects(response: httpx.Response) -> None:
        assert response.status_code == 200
        assert [p["id"] for p in response.json()] in ([pid], [other["project_id"]])

    def own_uploads(name: str) -> Check:
        def check(response: httpx.Response) -> None:
            assert response.status_code == 200
            assert {u["party"] for u in response.json()} == {name}

        return check

    def no_summary(response: httpx.Response) -> None:
        assert response.status_code == 200
        body = response.json()
        for run in body if isinstance(body, list) else [body]:
            assert run["summary"] is None  # other parties' sizes are not theirs to see

    def with_summary(response: httpx.Response) -> None:
        assert response.status_code == 200
        body = response.json()
        done = [r for r in (body if isinstance(body, list) else [body]) if r["status"] == "done"]
        assert done and all(r["summary"] for r in done)

    party_view = {n: ok for n in PARTNERS}
    # (method, path template, body/params, expectations by caller; unspecified: default)
    cases: list[tuple[str, str, dict[str, Any], dict[str, Check]]] = [
        ("GET", "/health", {}, dict.fromkeys(callers, ok)),
        ("POST", "/projects", {"json": project_body(encoded.schema)},
         {"admin": _status(201)}),
        ("GET", "/projects", {}, {"admin": ok, **{n: only_own_projects for n in PARTNERS},
                                 "other_project": only_own_projects}),
        ("GET", "/projects/{pid}", {}, {"admin": ok, **party_view}),
        ("GET", "/projects/{pid}/schema", {}, {"admin": ok, **party_view}),
        ("DELETE", "/projects/{spare}", {}, {"admin": _status(204)}),
        ("POST", "/projects/{pid}/uploads", {"content": b"PACELINK"},
         {n: _status(422) for n in PARTNERS}),  # authorised; the body is then refused
        ("GET", "/projects/{pid}/uploads", {}, {"admin": ok,
                                                **{n: own_uploads(n) for n in PARTNERS}}),
        ("POST", "/projects/{pid}/runs", {"json": {}}, {"admin": _status(202)}),
        # Authorised for parties; then refused, as their uploads carry no record keys.
        ("POST", "/projects/{pid}/withdrawals", {"json": WITHDRAWAL},
         {n: _status(409) for n in PARTNERS}),
        ("GET", "/projects/{pid}/runs", {}, {"admin": with_summary,
                                             **{n: no_summary for n in PARTNERS}}),
        ("GET", "/projects/{pid}/runs/{run}", {}, {"admin": with_summary,
                                                   **{n: no_summary for n in PARTNERS}}),
        ("GET", "/projects/{pid}/releases/mapping", {},
         {"skills_agency": ok, "benefits_dept": ok}),
        ("GET", "/projects/{pid}/releases/mapping", {"params": {"upload": "{council_upload}"}},
         {"skills_agency": _status(404), "benefits_dept": _status(404)}),
        ("GET", "/projects/{pid}/releases/flags/benefits_dept", {}, {"skills_agency": ok}),
        ("GET", "/projects/{pid}/releases/flags/council", {}, {}),
        ("GET", "/projects/{pid}/releases/counts", {}, {"admin": ok, **party_view,
                                                        "benefits_dept": ok}),
        ("GET", "/projects/{pid}/releases/scores", {}, {"admin": ok}),
        ("GET", "/audit", {}, {"admin": ok}),
        ("GET", "/audit/verify", {}, {"admin": ok}),
    ]  # fmt: skip
    # The policy: skills_agency has mapping, counts and flags:benefits_dept; benefits_dept
    # the default (mapping, counts); the council counts only.
    values = {"pid": pid, "spare": spare, "run": run["id"],
              "council_upload": uploads["council"]}  # fmt: skip

    covered: set[tuple[str, str]] = set()
    for method, template, kwargs, expected in cases:
        path = template.format(**values)
        request = {k: ({p: v.format(**values) for p, v in v.items()} if k == "params" else v)
                   for k, v in kwargs.items()}  # fmt: skip
        covered.add((method, _route_of(template)))
        for caller, token in callers.items():
            if caller in expected:
                check = expected[caller]
            elif token is None or caller == "forged":
                check = anon
            elif method == "GET" and template == "/health":
                check = ok
            else:
                check = denied
            if method == "DELETE" and caller == "admin":
                continue  # the operator's deletion runs last, below
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = httpx.request(method, unit.url + path, headers=headers, **request)
            try:
                check(response)
            except AssertionError as exc:
                raise AssertionError(f"{caller} {method} {path}: {exc}") from None
    response = httpx.delete(f"{unit.url}/projects/{spare}",
                            headers={"Authorization": f"Bearer {unit.admin_token}"})  # fmt: skip
    assert response.status_code == 204

    # The console's pages have their own matrix (tests/linkage_unit/console).
    routes = {(m, r.path) for r in api_routes(unit.app) if not r.path.startswith("/console")
              for m in r.methods}  # fmt: skip
    assert len(routes) > 15
    assert routes - covered == set(), "endpoints missing from the authorization matrix"

    # The project dimension, over every project-scoped route from the app itself: a token
    # of one project opens nothing of another, and a party learns nothing about which
    # project IDs exist (403 for a real other project and for one that does not exist).
    missing = "0123456789abcdef"
    for method, route in sorted(routes):
        if "{project_id}" not in route:
            continue
        for target, party_tokens in ((other["project_id"], tokens),
                                     (pid, other["parties"]), (missing, tokens)):  # fmt: skip
            path = route.format(project_id=target, run_id=run["id"], other="x")
            body = WITHDRAWAL if route.endswith("/withdrawals") else {}
            for name, token in party_tokens.items():
                response = httpx.request(method, unit.url + path, json=body,
                                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                assert response.status_code == 403, (name, method, path, response.text)
                # Operator-only routes refuse a party before looking at the project: the
                # answer says nothing about the project either way.
                assert response.json()["detail"] in (
                    "this token is not valid for this project", "only the operator may do this",
                ), (method, path)  # fmt: skip
        response = httpx.request(method, unit.url + route.format(
            project_id=missing, run_id=run["id"], other="x"),
            json=WITHDRAWAL if route.endswith("/withdrawals") else {},
            headers={"Authorization": f"Bearer {unit.admin_token}"})  # fmt: skip
        assert response.status_code in (404, 403), (method, route, response.text)


def _route_of(template: str) -> str:
    return (
        template.replace("{pid}", "{project_id}").replace("{spare}", "{project_id}")
        .replace("{run}", "{run_id}").replace("/flags/benefits_dept", "/flags/{other}")
        .replace("/flags/council", "/flags/{other}")
    )  # fmt: skip
