"""The console over real HTTP: who may reach which page, what pages never show, what they say."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from typer.testing import CliRunner

from encoder.cli import app, load_plugins
from linkage_unit.client import UnitClient
from linkage_unit.console import sessions
from linkage_unit.console.views import PREFIX, router
from tests.linkage_unit.console.conftest import (
    PARTNERS,
    TRICKY_IDS,
    ConsoleProject,
    routes,
    secrets_of,
)


def _get(made: ConsoleProject, path: str, token: str | None = None,
         cookies: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(made.url + path, headers=headers, cookies=cookies, follow_redirects=False)


def _audit(made: ConsoleProject) -> list[dict[str, object]]:
    with UnitClient(made.url, made.unit.admin_token) as admin:
        return admin.audit()


def test_every_console_route_is_covered(console_project: ConsoleProject) -> None:
    """The routes the tests walk are all the console's pages: none can be forgotten."""
    made = console_project
    walked = list(routes(made))
    console_routes = [
        r for r in router.routes
        if isinstance(r, APIRoute) and r.path not in (PREFIX + "/login", PREFIX + "/logout")
    ]  # fmt: skip
    assert console_routes
    for route in console_routes:
        assert any(route.path_regex.match(path) for path in walked), route.path


def test_no_page_without_sign_in(console_project: ConsoleProject) -> None:
    made = console_project
    forged = f"admin.0.{int(time.time()) + 3600}.{'0' * 16}.{'0' * 64}"
    for path in routes(made):
        plain = _get(made, path)
        assert plain.status_code == 303, path
        assert plain.headers["location"].startswith(f"{PREFIX}/login?next=")
        assert _get(made, path, cookies={sessions.COOKIE: forged}).status_code == 303, path
        wrong = _get(made, path, token="not-a-token")
        assert wrong.status_code == 401, path
        assert "invalid token" in wrong.text


def test_operator_pages_refuse_parties(console_project: ConsoleProject) -> None:
    made = console_project
    before = len(_audit(made))
    refused = 0
    for path, info in routes(made).items():
        if info["who"] != "admin":
            continue
        for token in [*made.tokens.values(), *made.other_tokens.values()]:
            answer = _get(made, path, token)
            assert answer.status_code == 403, path
            assert "text/html" in answer.headers["content-type"] or path.endswith(
                ("/status", "/verify")
            )
            refused += 1
    entries = _audit(made)[before:]
    assert sum(e["action"] == "access.refused" for e in entries) == refused


def test_party_pages_only_for_that_party(console_project: ConsoleProject) -> None:
    made = console_project
    for path, info in routes(made).items():
        if info["who"] in ("admin", "any"):
            continue
        owner = str(info["who"])
        assert _get(made, path, made.tokens[owner]).status_code == 200, path
        for name in PARTNERS:
            if name != owner:
                answer = _get(made, path, made.tokens[name])
                assert answer.status_code == 403, (path, name)
                assert "another party" in answer.text
        for token in made.other_tokens.values():  # another project's party
            assert _get(made, path, token).status_code == 403, path
    # The operator sees a party's page (what it may fetch) but gets no release through it.
    agency = f"/console/projects/{made.project}/parties/skills_agency"
    assert _get(made, agency, made.unit.admin_token).status_code == 200
    refused = _get(made, agency + "/download/mapping", made.unit.admin_token)
    assert refused.status_code == 403 and "use a party token" in refused.text


def test_party_home_goes_to_its_own_page(console_project: ConsoleProject) -> None:
    made = console_project
    answer = _get(made, "/console/", made.tokens["council"])
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/projects/{made.project}/parties/council"


def test_sign_in_sets_a_signed_cookie_that_holds_no_token(console_project: ConsoleProject,
                                                         ) -> None:  # fmt: skip
    made = console_project
    token = made.tokens["skills_agency"]
    with httpx.Client(base_url=made.url) as browser:
        answer = browser.post("/console/login", data={"token": token, "next": "/console/"})
        assert answer.status_code == 303
        assert answer.headers["location"].endswith("/parties/skills_agency")
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert token not in cookie
        assert browser.get(answer.headers["location"]).status_code == 200
        value = browser.cookies[sessions.COOKIE]
        # Any change to the signed fields is refused: another party, a later expiry.
        kind, party, expires, tag, mac = value.split(".")
        for altered in (f"{kind}.{int(party) + 1}.{expires}.{tag}.{mac}",
                        f"{kind}.{party}.{int(expires) + 99}.{tag}.{mac}",
                        f"admin.0.{expires}.{tag}.{mac}"):  # fmt: skip
            browser.cookies.set(sessions.COOKIE, altered, path="/console")
            assert browser.get("/console/").status_code == 303
        browser.cookies.set(sessions.COOKIE, value, path="/console")
        assert browser.get("/console/").status_code == 303  # home: on to the party page
        out = browser.post("/console/logout")
        assert out.status_code == 303 and 'pacelink_console=""' in out.headers["set-cookie"]


def test_expired_sign_in_is_refused(console_project: ConsoleProject) -> None:
    made = console_project
    from linkage_unit.api.deps import Caller, hash_token

    state = made.unit.app.state.unit
    old = sessions.issue(state, Caller("admin"), hash_token(made.unit.admin_token),
                         now=time.time() - sessions.LIFETIME - 1)  # fmt: skip
    assert _get(made, "/console/audit", cookies={sessions.COOKIE: old}).status_code == 303
    fresh = sessions.issue(state, Caller("admin"), hash_token(made.unit.admin_token))
    assert _get(made, "/console/audit", cookies={sessions.COOKIE: fresh}).status_code == 200


def test_failed_sign_in_is_audited_and_never_redirects_off_site(
    console_project: ConsoleProject,
) -> None:
    made = console_project
    before = len(_audit(made))
    bad = httpx.post(made.url + "/console/login", data={"token": "guess", "next": "/console/"})
    assert bad.status_code == 401 and "not valid" in bad.text
    assert any(e["action"] == "auth.refused" for e in _audit(made)[before:]) or (
        made.unit.settings.anonymous_audit_seconds > 0
    )
    # A sign-in form posted from another site's page is refused.
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null", "Sec-Fetch-Site": "cross-site"}):  # fmt: skip
        forged = httpx.post(made.url + "/console/login", data={"token": made.unit.admin_token},
                            headers=headers)  # fmt: skip
        assert forged.status_code == 403 and "set-cookie" not in forged.headers
    for target in ("https://evil.example/", "//evil.example/", "/console/..//evil", "/docs"):
        good = httpx.post(made.url + "/console/login",
                          data={"token": made.unit.admin_token, "next": target})  # fmt: skip
        assert good.headers["location"] == "/console/", target


def test_pages_show_no_identifier_id_or_secret(console_project: ConsoleProject) -> None:
    """No page shows an identifier, ID or secret, to the operator or to any party.

    Every page is checked for a partner's value, a local ID, a record key, a linkage ID, a
    token and a salt.
    """
    made = console_project
    forbidden = made.identifiers | secrets_of(made) | set(TRICKY_IDS)
    assert len(forbidden) > 5000
    pages = 0
    for path, info in routes(made).items():
        if "/download/" in path:
            continue  # the releases themselves: rows and linkage IDs, for the party alone
        who = [made.unit.admin_token] if info["who"] in ("admin", "any") else [
            made.tokens[str(info["who"])]]  # fmt: skip
        if info["who"] == "any":
            who += list(made.tokens.values())
        for token in who:
            answer = httpx.get(made.url + path, headers={"Authorization": f"Bearer {token}"},
                               follow_redirects=True)  # fmt: skip
            assert answer.status_code == 200, path
            text = answer.text
            # Names as whole words only ("Hall" is part of other words on a page); anything
            # with digits or punctuation (dates, postcodes, IDs, keys) anywhere in the text.
            words = set(re.findall(r"[\w'=+@,\"-]+", text)) | set(re.findall(r"\w+", text))
            leaked = {
                v
                for v in forbidden
                if v in words or (not v.isalpha() and len(v) >= 6 and v in text)
            }
            assert not leaked, (path, sorted(leaked)[:5])
            pages += 1
    assert pages >= 12


def test_pages_are_sent_with_security_headers(console_project: ConsoleProject) -> None:
    made = console_project
    answer = _get(made, "/console/audit", made.unit.admin_token)
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-frame-options"] == "DENY"


def test_api_errors_stay_json(console_project: ConsoleProject) -> None:
    """The console's HTML error pages do not change what the API answers."""
    made = console_project
    left = made.other_tokens["left"]
    answer = httpx.get(f"{made.url}/projects/{made.project}/runs",
                       headers={"Authorization": f"Bearer {left}"})  # fmt: skip
    assert answer.status_code == 403
    assert answer.json() == {"detail": "this token is not valid for this project"}


def test_uploads_page_shows_coverage_and_rejections(console_project: ConsoleProject) -> None:
    made = console_project
    text = _get(made, f"/console/projects/{made.project}/uploads", made.unit.admin_token).text
    with UnitClient(made.url, made.unit.admin_token) as admin:
        uploads = admin.uploads(made.project)
    for u in uploads:
        assert u["id"] in text
    # The council's file lacks some surnames: its coverage shows below 100 %.
    assert re.search(r"9\d\.\d %", text)
    assert "withdrawal of 1 record keys" in text


def test_run_page_draws_its_charts(console_project: ConsoleProject) -> None:
    made = console_project
    first, last = made.runs
    text = _get(made, f"/console/projects/{made.project}/runs/{first}", made.unit.admin_token).text
    for chart in ("chart-histogram", "chart-curve", "chart-sizes"):
        assert f'id="{chart}"' in text
    assert text.count('role="img"') == 3
    assert "Estimated precision and recall against the threshold" in text
    later = _get(made, f"/console/projects/{made.project}/runs/{last}", made.unit.admin_token).text
    assert 'id="no-curve"' in later and f"runs/{first}" in later
    runs = _get(made, f"/console/projects/{made.project}/runs", made.unit.admin_token).text
    assert "over 2 runs" in runs


def test_counts_page_shows_suppression_as_such(console_project: ConsoleProject) -> None:
    made = console_project
    path = f"/console/projects/{made.project}/parties/council/counts"
    text = _get(made, path, made.tokens["council"]).text
    with UnitClient(made.url, made.tokens["council"]) as party:
        counts = party.counts(made.project)
    for row in counts["counts"]:
        if isinstance(row["count"], int):
            assert f"{row['count']:,}" in text
    if any(str(r["count"]).startswith("<") for r in counts["counts"]):
        assert "(suppressed)" in text


def test_downloads_are_the_releases_and_are_audited(console_project: ConsoleProject,
                                                   tmp_path: Path) -> None:  # fmt: skip
    made = console_project
    agency = made.tokens["skills_agency"]
    base = f"/console/projects/{made.project}/parties/skills_agency/download"
    before = len(_audit(made))
    with UnitClient(made.url, agency) as party:
        assert _get(made, base + "/mapping", agency).text == party.mapping(made.project)
        upload = made.uploads["skills_agency"][0]
        assert _get(made, base + f"/mapping?upload={upload}", agency).text == party.mapping(
            made.project, upload
        )
        assert _get(made, base + "/flags/benefits_dept", agency).text == party.flags(
            made.project, "benefits_dept"
        )
    token_file = tmp_path / "token"
    token_file.write_text(agency)
    token_file.chmod(0o600)
    load_plugins()
    result = CliRunner().invoke(app, [
        "results", "--unit", made.url, "--project", made.project, "--token-file",
        str(token_file), "--release", "counts", "--out", str(tmp_path / "counts.json"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    downloaded = _get(made, base + "/counts", agency)
    assert downloaded.headers["content-disposition"] == 'attachment; filename="counts.json"'
    assert downloaded.content == (tmp_path / "counts.json").read_bytes()
    actions = [e["action"] for e in _audit(made)[before:]]
    # Each console download is one release entry, like the API's.
    assert actions.count("release.mapping") == 4 and actions.count("release.counts") == 2
    assert actions.count("release.flags:benefits_dept") == 2
    # A release the policy does not grant is refused the same way through the console.
    refused = _get(made, f"/console/projects/{made.project}/parties/council/download/mapping",
                   made.tokens["council"])  # fmt: skip
    assert refused.status_code == 403
    assert "does not release 'mapping'" in html.unescape(refused.text)
    assert json.loads(json.dumps(_audit(made)[-1]))["action"] == "release.refused"


def test_audit_page_verifies_the_chain(console_project: ConsoleProject) -> None:
    made = console_project
    text = _get(made, "/console/audit", made.unit.admin_token).text
    assert "Intact: all" in text
    report = _get(made, "/console/audit/verify", made.unit.admin_token).json()
    assert report["ok"] is True and report["entries"] > 10


def test_releases_page_lists_made_and_refused(console_project: ConsoleProject) -> None:
    made = console_project
    # One refused and one made release, so both kinds are on the page whatever ran before.
    _get(made, f"/console/projects/{made.project}/parties/council/download/mapping",
         made.tokens["council"])  # fmt: skip
    _get(made, f"/console/projects/{made.project}/parties/council/counts", made.tokens["council"])
    text = _get(made, f"/console/projects/{made.project}/releases", made.unit.admin_token).text
    assert "party:council" in text and "refused (policy)" in text and ">counts<" in text


@pytest.mark.parametrize("missing", ["0123456789abcdef", "nothex"])
def test_unknown_project_is_a_page_not_found(console_project: ConsoleProject,
                                            missing: str) -> None:  # fmt: skip
    answer = _get(console_project, f"/console/projects/{missing}",
                  console_project.unit.admin_token)  # fmt: skip
    assert answer.status_code == 404 and "<h1>Not found</h1>" in answer.text


def test_runs_keep_their_diagnostics_and_charts(console_project: ConsoleProject) -> None:
    """What the worker records for the console, and the charts drawn from it once.

    The records are the scored pairs' histogram, the estimated curve (auto only) and entity
    sizes that add up.
    """
    made = console_project
    from linkage_unit.database import Run, make_engine, session_factory

    engine = make_engine(made.unit.settings.url())
    try:
        with session_factory(engine)() as session:
            first, second = (session.get(Run, r) for r in made.runs)
            assert first is not None and second is not None
            diag = json.loads(str(first.diagnostics_json))
            summary = json.loads(str(first.summary_json))
            later = json.loads(str(second.diagnostics_json))
    finally:
        engine.dispose()
    edges, counts = diag["distribution"]["bin_edges"], diag["distribution"]["histogram"]
    assert len(edges) == len(counts) + 1 and edges[-1] == 1.0 and sum(counts) > 1000
    curve = diag["curve"]
    k = min(range(len(curve["threshold"])),
            key=lambda i: abs(curve["threshold"][i] - first.threshold_used))  # fmt: skip
    assert curve["precision"][k] == pytest.approx(summary["estimated_precision"], abs=0.02)
    assert curve["recall"][k] == pytest.approx(summary["estimated_recall"], abs=0.02)
    sizes = {int(n): c for n, c in summary["entity_sizes"].items()}
    assert sum(sizes.values()) == summary["entities"]
    assert sum(n * c for n, c in sizes.items()) == summary["records"]
    assert set(diag["charts"]) == {"histogram", "curve", "sizes", "changes"}
    assert all(svg.startswith("<svg") for svg in diag["charts"].values())
    assert later["curve"] is None and "curve" not in later["charts"]
