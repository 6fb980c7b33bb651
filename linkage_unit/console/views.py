"""The console's pages: what the operator and each partner see, rendered on the server.

Every page is a read of the unit's state through the same checks as the API: the caller is
the operator or one party (:mod:`.sessions`), operator pages refuse parties, a party page
refuses every other party, and whatever the API would audit as a release (a party's
counts, mapping or flags) is fetched through the API's own release functions, so it is
checked against the sharing policy and audited the same way. A refused page is audited
like a refused API request (``access.refused``).

What pages show: names the operator gave (project, parties, purpose), IDs the unit issued
(projects, uploads, runs), counts, times and aggregates (histograms, coverage). Never an
encoding, a record key, a linkage ID, a local ID, a token or the project's salt; the
near-threshold pairs (as linkage IDs) stay with ``pacelink unit scores``, which audits.

Slightly over 500 lines: one short function per page, all behind the checks above, which a
split by audience would have to share or repeat.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from linkage_unit import audit as audit_log
from linkage_unit import repository
from linkage_unit.api import releases
from linkage_unit.api.deps import (
    Caller,
    Refusal,
    SessionDep,
    caller_for_token,
    get_project,
    hash_token,
    is_unit_id,
    require_admin,
    state,
)
from linkage_unit.api.refusals import record_refusal
from linkage_unit.console import charts, sessions
from linkage_unit.database import Project, Run
from linkage_unit.policy import SharingPolicy

__all__ = [
    "PREFIX",
    "SECURITY_HEADERS",
    "ConsoleCaller",
    "NotSignedIn",
    "audit_page",
    "audit_verify",
    "download_counts",
    "download_flags",
    "download_mapping",
    "home",
    "login",
    "login_form",
    "logout",
    "page",
    "party_counts",
    "party_page",
    "project_page",
    "releases_page",
    "router",
    "run_page",
    "run_status",
    "runs_page",
    "templates",
    "uploads_page",
]

#: Where the console lives.
PREFIX: Final = "/console"
_HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(_HERE / "templates"))
router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: Every page is sent with these: no other origin's script, frame or style; no caching of
#: pages that show a partnership's figures; no referrer leaking a project ID elsewhere.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Same-origin only: no project ID reaches another site in a Referer, and the console's
    # own form posts keep their Origin (browsers send "null" under no-referrer).
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_AUDIT_PAGE: Final = 200
_DAY: Final = 86_400.0


class NotSignedIn(Exception):
    """The request carries no valid sign-in: pages send the browser to the sign-in form."""


# ------------------------------------------------------------------------------ callers


def _console_caller(request: Request, session: SessionDep) -> Caller:
    """The signed-in caller (cookie), or one that sends a token.

    Scripts and benchmarks send ``Authorization: Bearer`` instead of signing in.
    """
    unit = state(request)
    caller: Caller | None = None
    cookie = request.cookies.get(sessions.COOKIE)
    if cookie:
        caller = sessions.resolve(unit, session, cookie)
    if caller is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            caller = caller_for_token(request, session, token.strip())
            if caller is None:
                raise Refusal(401, "invalid token", action="auth.refused",
                              check="invalid token")  # fmt: skip
    if caller is None:
        raise NotSignedIn
    request.state.caller = caller
    return caller


ConsoleCaller = Annotated[Caller, Depends(_console_caller)]


def _own_party(caller: Caller, project_id: str, name: str) -> None:
    """The operator, or the party ``name`` of this project itself."""
    if caller.is_admin:
        return
    if caller.project_id != project_id or caller.party_name != name:
        raise Refusal(403, "this page belongs to another party", action="access.refused",
                      check="own party only")  # fmt: skip


def _project(session: SessionDep, project_id: str) -> Project:
    return get_project(session, project_id)


def _operator_project(caller: Caller, session: SessionDep, project_id: str) -> Project:
    """The project, for the operator's pages (a party is refused, and audited)."""
    require_admin(caller)
    return get_project(session, project_id)


# ---------------------------------------------------------------------------- rendering


def page(request: Request, template: str, context: dict[str, Any],
         status_code: int = 200) -> Response:  # fmt: skip
    """A page, with the console's security headers."""
    caller = getattr(request.state, "caller", None)
    response = templates.TemplateResponse(
        request, template, {"caller": caller, "prefix": PREFIX, **context},
        status_code=status_code, headers=SECURITY_HEADERS,
    )  # fmt: skip
    return response


def _when(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) + " UTC"


def _duration(start: float | None, end: float | None) -> str:
    if start is None:
        return ""
    seconds = (end if end is not None else time.time()) - start
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


templates.env.filters["when"] = _when
# In tables: to the minute, on one line (the UTC is in the column heading).
templates.env.filters["short"] = lambda at: (
    "" if at is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))
)
templates.env.filters["thousands"] = lambda n: "" if n is None else f"{int(n):,}"
templates.env.filters["percent"] = lambda x: (
    "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"
)


def _features(project: Project) -> list[str]:
    """The schema's features, in schema order (ignored columns left out)."""
    schema = json.loads(project.schema_json)
    return [str(f["identifier"]) for f in schema.get("features", []) if not f.get("ignored", False)]


def _upload_rows(session: SessionDep, project: Project, party_id: int | None = None
                 ) -> list[dict[str, Any]]:  # fmt: skip
    features = _features(project)
    rows = []
    for upload, name in repository.uploads_with_party(session, project.id, party_id):
        profile = json.loads(upload.profile_json) if upload.profile_json else None
        coverage: list[float | None] = []
        summary = None
        if profile is not None and upload.record_count:
            # None shows as "absent": a feature the file lacks, or declared absent (--absent;
            # profiles kept before that have no "absent" list).
            absent = set(profile.get("absent", ()))
            coverage = [
                profile["features"][f] / upload.record_count
                if f in profile["features"] and f not in absent
                else None
                for f in features
            ]
            summary = profile.get("input_summary")
        rows.append({
            "upload": upload, "party": name, "profile": profile, "coverage": coverage,
            "summary": summary,
            "rejected_share": (summary["rejected"] / summary["records_in"]
                               if summary and summary["records_in"] else None),
        })  # fmt: skip
    return rows


def _run_row(run: Run) -> dict[str, Any]:
    summary = json.loads(run.summary_json) if run.summary_json else {}
    return {"run": run, "summary": summary, "duration": _duration(run.started_at,
                                                                    run.finished_at)}  # fmt: skip


# -------------------------------------------------------------------------- sign in/out


def _safe_next(target: str | None) -> str:
    """Only a console path: never another site (an open redirect would help phishing)."""
    if target and target.startswith(PREFIX + "/") and "//" not in target and "\\" not in target:
        return target
    return PREFIX + "/"


def _same_origin(request: Request) -> None:
    """Refuse a form posted from another site's page.

    That is login cross-site request forgery: signing a victim in as the attacker's party.
    Browsers say where a request comes from in ``Sec-Fetch-Site`` (and ``Origin``); a
    request without either is not a browser's.
    """
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if (site is not None and site not in ("same-origin", "none")) or (
        origin is not None and origin != own
    ):
        raise HTTPException(403, "this form must be sent from the console's own pages")


@router.get("/login")
def login_form(request: Request, next: str | None = Query(default=None)) -> Response:
    """The sign-in form: paste the admin token or your party token."""
    return page(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login")
def login(request: Request, session: SessionDep, token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "") -> Response:  # fmt: skip
    """Check the token; on success set the console's cookie and go on."""
    _same_origin(request)
    caller = caller_for_token(request, session, token.strip()) if token.strip() else None
    if caller is None:
        refusal = Refusal(401, "invalid token", action="auth.refused", check="invalid token")
        record_refusal(request, refusal)
        return page(request, "login.html",
                    {"next": _safe_next(next), "error": "That token is not valid here."},
                    status_code=401)  # fmt: skip
    request.state.caller = caller
    target = _safe_next(next)
    if caller.kind == "party" and target == PREFIX + "/":
        target = f"{PREFIX}/projects/{caller.project_id}/parties/{caller.party_name}"
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        sessions.COOKIE, sessions.issue(state(request), caller, hash_token(token.strip())),
        max_age=sessions.LIFETIME, path=PREFIX, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """Forget the sign-in."""
    _same_origin(request)
    response = RedirectResponse(PREFIX + "/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(sessions.COOKIE, path=PREFIX)
    return response


# ------------------------------------------------------------------------ operator pages


@router.get("/")
def home(request: Request, session: SessionDep, caller: ConsoleCaller) -> Response:
    """The operator's projects with their retention deadlines; a party goes to its page."""
    if not caller.is_admin:
        return RedirectResponse(
            f"{PREFIX}/projects/{caller.project_id}/parties/{quote(str(caller.party_name))}",
            status_code=303, headers=SECURITY_HEADERS,
        )  # fmt: skip
    records = repository.deliveries_total(session)
    parties = repository.party_counts(session)
    rows = []
    for p in repository.projects(session, order_by="expires_at"):
        current = repository.find_run(session, p.id, p.current_run_id) if p.current_run_id else None
        rows.append({"project": p, "records": records.get(p.id, 0),
                     "parties": parties.get(p.id, 0), "current": current,
                     "days_left": (p.expires_at - time.time()) / _DAY})  # fmt: skip
    return page(request, "projects.html", {"rows": rows})


@router.get("/projects/{project_id}")
def project_page(project_id: str, request: Request, session: SessionDep,
                 caller: ConsoleCaller) -> Response:  # fmt: skip
    """A project: its parties, settings, sharing policy, schema and state."""
    project = _operator_project(caller, session, project_id)
    policy = SharingPolicy.model_validate_json(project.policy_json)
    names = repository.party_names(session, project.id)
    uploads = _upload_rows(session, project)
    by_party = {
        name: {
            "uploads": sum(1 for u in uploads if u["party"] == name),
            "records": sum(u["upload"].record_count for u in uploads
                           if u["party"] == name and u["upload"].kind != "withdrawal"),
            "grants": sorted(policy.grants_for(name)),
        }
        for name in names
    }  # fmt: skip
    current = (
        repository.find_run(session, project.id, project.current_run_id)
        if project.current_run_id else None
    )  # fmt: skip
    return page(request, "project.html", {
        "project": project, "parties": by_party, "policy": policy,
        "features": _features(project), "current": current,
        "days_left": (project.expires_at - time.time()) / _DAY,
    })  # fmt: skip


@router.get("/projects/{project_id}/uploads")
def uploads_page(project_id: str, request: Request, session: SessionDep,
                 caller: ConsoleCaller) -> Response:  # fmt: skip
    """Every upload: kind, records, field coverage per feature, what the encoder rejected."""
    project = _operator_project(caller, session, project_id)
    return page(request, "uploads.html", {
        "project": project, "features": _features(project),
        "rows": _upload_rows(session, project),
    })  # fmt: skip


@router.get("/projects/{project_id}/runs")
def runs_page(project_id: str, request: Request, session: SessionDep,
              caller: ConsoleCaller) -> Response:  # fmt: skip
    """Every run with its state, and what each batch changed over time."""
    project = _operator_project(caller, session, project_id)
    runs = repository.runs(session, project.id)
    rows = [_run_row(r) for r in runs]
    done = [r for r in runs if r.status == "done" and r.summary_json]
    chart = None
    if done:  # drawn by the worker when the latest run finished; else drawn now
        latest = json.loads(done[-1].diagnostics_json or "{}").get("charts", {})
        chart = latest.get("changes") or charts.changes_over_runs([
            {"name": charts.run_label(k, r.id),
             **{c: int(json.loads(str(r.summary_json)).get(c, 0)) for c in charts.CHANGES}}
            for k, r in enumerate(done)
        ])  # fmt: skip
    return page(request, "runs.html", {"project": project, "rows": rows[::-1], "chart": chart})


def _get_run(session: SessionDep, project: Project, run_id: str) -> Run:
    if not is_unit_id(run_id):
        raise HTTPException(404, "no such run in this project (IDs are 16 hex digits)")
    run = repository.find_run(session, project.id, run_id)
    if run is None:
        raise HTTPException(404, "no such run in this project")
    return run


@router.get("/projects/{project_id}/runs/{run_id}")
def run_page(project_id: str, run_id: str, request: Request, session: SessionDep,
             caller: ConsoleCaller) -> Response:  # fmt: skip
    """One run: its summary, score histogram, estimated precision/recall, entity sizes."""
    project = _operator_project(caller, session, project_id)
    run = _get_run(session, project, run_id)
    row = _run_row(run)
    histogram = curve = sizes = None
    estimated_by: Run | None = None
    threshold = run.threshold_used
    diagnostics = json.loads(run.diagnostics_json) if run.diagnostics_json else {}
    drawn = diagnostics.get("charts", {})  # by the worker; else drawn now (and cached)
    if run.status == "done" and threshold is not None and diagnostics:
        dist = diagnostics["distribution"]
        histogram = drawn.get("histogram") or charts.score_histogram(
            dist["bin_edges"], dist["histogram"], threshold)  # fmt: skip
        if diagnostics.get("curve"):
            curve = drawn.get("curve") or charts.precision_recall(diagnostics["curve"], threshold)
        else:  # a fixed or pinned threshold: the run that estimated it has the curve
            estimated = repository.done_runs(session, project.id, before=run.created_at,
                                             auto=True)  # fmt: skip
            estimated_by = estimated[-1] if estimated else None
    if row["summary"].get("entity_sizes"):
        sizes = drawn.get("sizes") or charts.entity_sizes(row["summary"]["entity_sizes"])
    return page(request, "run.html", {
        "project": project, "row": row, "histogram": histogram, "curve": curve,
        "sizes": sizes, "estimated_by": estimated_by, "has_diagnostics": bool(diagnostics),
    })  # fmt: skip


@router.get("/projects/{project_id}/runs/{run_id}/status")
def run_status(project_id: str, run_id: str, session: SessionDep,
               caller: ConsoleCaller) -> JSONResponse:  # fmt: skip
    """A run's state for the page's live progress (polled while it is queued or running)."""
    run = _get_run(session, _operator_project(caller, session, project_id), run_id)
    return JSONResponse({
        "status": run.status, "stage": run.stage, "progress": run.progress,
        "duration": _duration(run.started_at, run.finished_at),
    }, headers=SECURITY_HEADERS)  # fmt: skip


@router.get("/projects/{project_id}/releases")
def releases_page(project_id: str, request: Request, session: SessionDep,
                  caller: ConsoleCaller) -> Response:  # fmt: skip
    """Releases made and refused in the project, from the audit log."""
    project = _operator_project(caller, session, project_id)
    entries = repository.audit_entries(session, project_id=project.id, action_prefix="release.",
                                       newest_first=True, limit=_AUDIT_PAGE)  # fmt: skip
    rows = [audit_log.entry_dict(e) for e in entries]
    made = sum(1 for r in rows if r["action"] != "release.refused")
    return page(request, "releases.html", {"project": project, "rows": rows, "made": made,
                                           "limit": _AUDIT_PAGE})  # fmt: skip


@router.get("/audit")
def audit_page(request: Request, session: SessionDep, caller: ConsoleCaller,
               before: int | None = Query(default=None, ge=1)) -> Response:  # fmt: skip
    """The audit log, newest first, and whether its chain is intact (checked now)."""
    require_admin(caller)
    unit = state(request)
    report = audit_log.verify(session, unit.audit_key, unit.data_dir)
    entries = repository.audit_entries(session, before=before, newest_first=True,
                                       limit=_AUDIT_PAGE)  # fmt: skip
    rows = [audit_log.entry_dict(e) for e in entries]
    older = rows[-1]["seq"] if rows and rows[-1]["seq"] > 1 else None
    return page(request, "audit.html", {"report": report, "rows": rows, "older": older})


@router.get("/audit/verify")
def audit_verify(request: Request, session: SessionDep, caller: ConsoleCaller) -> JSONResponse:
    """Check the chain again (the page's "verify now" button)."""
    require_admin(caller)
    unit = state(request)
    report = audit_log.verify(session, unit.audit_key, unit.data_dir)
    return JSONResponse({"ok": report.ok, "entries": report.entries,
                         "problems": report.problems[:20]},
                        headers=SECURITY_HEADERS)  # fmt: skip


# --------------------------------------------------------------------------- party pages


@router.get("/projects/{project_id}/parties/{name}")
def party_page(project_id: str, name: str, request: Request, session: SessionDep,
               caller: ConsoleCaller) -> Response:  # fmt: skip
    """A partner's view: its uploads and their state, and what it may fetch."""
    _own_party(caller, project_id, name)
    project = _project(session, project_id)
    party = repository.party_by_name(session, project.id, name)
    if party is None:
        raise HTTPException(404, "no such party in this project")
    policy = SharingPolicy.model_validate_json(project.policy_json)
    grants = sorted(policy.grants_for(name))
    withdrawing = repository.pending_withdrawal(session, project.id) is not None
    rows = _upload_rows(session, project, party.id)
    deliveries = [r for r in rows if r["upload"].kind != "withdrawal"]
    flags = [g.split(":", 1)[1] for g in grants if g.startswith("flags:")]
    return page(request, "party.html", {
        "project": project, "party": name, "grants": grants, "rows": rows,
        "deliveries": deliveries, "features": _features(project),
        "row_releases": (["mapping"] if "mapping" in grants else [])
        + [f"flags:{other}" for other in flags],
        "can_fetch": (not caller.is_admin and project.current_run_id is not None
                      and not withdrawing and any(r["upload"].linked_run_id for r in deliveries)),
        "withdrawing": withdrawing, "unit_url": str(request.base_url).rstrip("/"),
    })  # fmt: skip


@router.get("/projects/{project_id}/parties/{name}/counts")
def party_counts(project_id: str, name: str, request: Request, session: SessionDep,
                 caller: ConsoleCaller) -> Response:  # fmt: skip
    """The overlap counts released to the party (a release: checked and audited)."""
    _own_party(caller, project_id, name)
    counts = releases.counts(project_id, state(request), session, caller)
    return page(request, "counts.html", {"project": _project(session, project_id),
                                         "party": name, "counts": counts})  # fmt: skip


@router.get("/projects/{project_id}/parties/{name}/download/counts")
def download_counts(project_id: str, name: str, request: Request, session: SessionDep,
                    caller: ConsoleCaller) -> Response:  # fmt: skip
    """The counts as ``pacelink results --release counts`` writes them."""
    _own_party(caller, project_id, name)
    counts = releases.counts(project_id, state(request), session, caller)
    body = json.dumps(counts.model_dump(mode="json"), indent=2) + "\n"
    return Response(body, media_type="application/json", headers={
        **SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="counts.json"',
    })  # fmt: skip


@router.get("/projects/{project_id}/parties/{name}/download/mapping")
def download_mapping(project_id: str, name: str, request: Request, session: SessionDep,
                     caller: ConsoleCaller,
                     upload: str | None = Query(default=None)) -> Response:  # fmt: skip
    """The party's rows and their linkage IDs (``upload_id,row,linkage_id``).

    As the API releases them; the page joins them to local IDs in the browser.
    """
    _own_party(caller, project_id, name)
    response = releases.mapping(project_id, state(request), session, caller, upload)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Disposition"] = 'attachment; filename="mapping-rows.csv"'
    return response


@router.get("/projects/{project_id}/parties/{name}/download/flags/{other}")
def download_flags(project_id: str, name: str, other: str, request: Request,
                   session: SessionDep, caller: ConsoleCaller,
                   upload: str | None = Query(default=None)) -> Response:  # fmt: skip
    """Whether each of the party's rows is also held by ``other`` (``upload_id,row,flag``)."""
    _own_party(caller, project_id, name)
    response = releases.flags(project_id, other, state(request), session, caller, upload)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Disposition"] = 'attachment; filename="flags-rows.csv"'
    return response
