"""Fuzzing the unit's HTTP API from its own OpenAPI schema: no request makes it fail (5xx).

Schemathesis reads the schema a running unit serves at ``/openapi.json`` and generates
requests for every operation — data that fits the schema and data that does not — which go
over real HTTP on loopback, with the operator's token and with a party's. The unit (SQLite)
first holds a project with uploads and a completed run; each operation under a project is
fuzzed twice, once with generated IDs and once aimed at that project (and its run), so the
upload, run and release endpoints get past "no such project" to the code behind it.

The fuzzing unit runs without a worker: runs the fuzzer queues stay queued instead of
taking the two CPUs, and the completed run's results stay what the releases serve.
Deleting the seeded project is left out (every later case would only meet 404s); deleting
generated project IDs still runs.

Schemathesis's pytest integration (``schema.parametrize``) does not run under pytest 9
(it sets ``Function._nodeid``, which pytest 9 no longer has), so the operations' Hypothesis
strategies are driven directly; every 5xx is collected and all are reported together.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from linkage_unit.client import UnitClient
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import PARTNERS, Encoded, project_body

# Cases per operation, generation mode and target: 17 operations give about 280
# requests per caller, 5-10 s on the shared 2-core machines.
MAX_EXAMPLES: Final = 5
# The party whose token fuzzes: the policy grants it every kind of release.
FUZZING_PARTY: Final = "skills_agency"
FLAGS_ABOUT: Final = "benefits_dept"
POLICY: Final = {"grants": {FUZZING_PARTY: ["mapping", "counts", f"flags:{FLAGS_ABOUT}"]}}
_SETTINGS: Final = settings(
    max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)  # fmt: skip


@dataclass(frozen=True)
class SeededUnit:
    """A running unit holding a linked project."""

    url: str
    tokens: dict[str, str]
    project_id: str
    run_id: str
    upload_id: str
    linkage_schema: dict[str, Any]


@pytest.fixture(scope="module")
def seeded_unit(tmp_path_factory: pytest.TempPathFactory, encoded: Encoded) -> Iterator[SeededUnit]:
    """A unit with a project whose three uploads a completed run has linked."""
    data_dir = tmp_path_factory.mktemp("fuzz") / "unit"
    admin_token = secrets.token_hex(32)
    with (
        EmbeddedUnit(data_dir, admin_token=admin_token, poll_seconds=0.05) as unit,
        UnitClient(unit.url, admin_token) as admin,
    ):
        created = admin.create_project(project_body(encoded.schema, policy=POLICY))
        project = created["project_id"]
        uploads = {}
        for name in PARTNERS:
            with UnitClient(unit.url, created["parties"][name]) as party:
                uploads[name] = party.upload(project, encoded.partners[name].plk)["id"]
        run = admin.wait(project, admin.start_run(project)["id"], poll=0.05, timeout=120)
        assert run["status"] == "done", run["error"]
    # The same data folder and database, served again without a worker (module docstring).
    with EmbeddedUnit(data_dir, admin_token=admin_token, worker=False) as unit:
        yield SeededUnit(
            url=unit.url, tokens={"admin": admin_token, "party": created["parties"][FUZZING_PARTY]},
            project_id=project, run_id=run["id"], upload_id=uploads[FUZZING_PARTY],
            linkage_schema=encoded.schema,
        )  # fmt: skip


Variant = tuple[dict[str, Any] | None, Callable[[Any], Any] | None]


def _with_valid_schema_and_parties(unit: SeededUnit) -> Callable[[Any], Any]:
    """Give a generated project a valid linkage schema and party names.

    A generated JSON object is never a valid linkage schema, and generated party names
    almost never pass the name check (the OpenAPI schema does not state it), so without this
    every project the fuzzer creates is refused before its policy, storage and audit entry
    are reached. Everything else of the body stays generated.
    """

    def fix(case: Any) -> Any:
        if isinstance(case.body, dict):
            case.body["schema"] = unit.linkage_schema
            parties = case.body.get("parties")
            count = len(parties) if isinstance(parties, list) else 2
            case.body["parties"] = [f"party{i}" for i in range(min(max(count, 2), 63))]
        return case

    return fix


def _variants(operation: Any, unit: SeededUnit) -> list[Variant]:
    """How to fuzz an operation: all generated, and where it helps, aimed at the seeded data.

    Aimed at the seeded project, the run is its completed run and the other party of a
    flags request the one the policy names, so those cases reach a release.
    """
    variants: list[Variant] = [(None, None)]
    names = {p.name for p in operation.path_parameters}
    if operation.method.upper() == "POST" and operation.path == "/projects":
        variants.append((None, _with_valid_schema_and_parties(unit)))
    if "project_id" not in names or operation.method.upper() == "DELETE":
        return variants
    aimed = {"project_id": unit.project_id}
    if "run_id" in names:
        aimed["run_id"] = unit.run_id
    if "other" in names:
        aimed["other"] = FLAGS_ABOUT
    variants.append((aimed, None))
    return variants


def _send(case: Any, unit: SeededUnit, caller: str, failures: list[str]) -> None:
    """Send one case as ``caller``; a 5xx answer is added to ``failures``."""
    headers = {"Authorization": f"Bearer {unit.tokens[caller]}"}
    response = case.call(base_url=unit.url, headers=headers, timeout=30)
    try:
        case.validate_response(response, checks=[not_a_server_error], headers=headers)
    except Exception:  # the check failed: record it and go on fuzzing
        curl = case.as_curl_command(headers=headers, base_url=unit.url)
        failures.append(f"{caller}: {case.operation.label} -> HTTP {response.status_code}\n"
                        f"    {curl}")  # fmt: skip


def _fuzz(unit: SeededUnit, caller: str) -> tuple[int, list[str]]:
    """Fuzz every operation as ``caller``; returns the number of requests and the 5xx found."""
    schema = schemathesis.openapi.from_url(f"{unit.url}/openapi.json", timeout=30)
    failures: list[str] = []
    sent: list[None] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path, tweak in _variants(operation, unit):
                strategy = operation.as_strategy(mode, path_parameters=path)
                if tweak is not None:
                    strategy = strategy.map(tweak)

                @_SETTINGS
                @given(case=strategy)
                def run(case: Any) -> None:
                    sent.append(None)
                    _send(case, unit, caller, failures)

                try:
                    run()
                except Unsatisfiable:
                    # Nothing of this operation can be made invalid (no parameters or body,
                    # or all fixed): there is no negative case to send.
                    assert mode is GenerationMode.NEGATIVE, operation.label
    return len(sent), failures


@pytest.mark.slow
@pytest.mark.parametrize("caller", ["admin", "party"])
def test_no_request_makes_the_unit_fail(seeded_unit: SeededUnit, caller: str) -> None:
    """Whatever the operator or a party sends, the unit answers without a 5xx."""
    sent, failures = _fuzz(seeded_unit, caller)
    assert sent >= 200  # the fuzzer did reach the unit
    assert failures == [], f"{len(failures)} of {sent} requests got a 5xx:\n" + "\n".join(
        sorted(set(failures))[:30]
    )
