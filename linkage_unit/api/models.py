"""Request and response bodies of the HTTP API (pydantic, at the boundary only)."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from linkage_unit.matching.solving import DEFAULT_DUPLICATES
from linkage_unit.matching.threshold import Threshold
from linkage_unit.policy import SharingPolicy

__all__ = [
    "AuditEntryOut",
    "AuditVerifyOut",
    "CountsOut",
    "ProjectCreate",
    "ProjectCreated",
    "ProjectOut",
    "RunCreate",
    "RunOut",
    "ScoresOut",
    "UploadOut",
    "WithdrawalCreate",
    "WithdrawalOut",
]

PartyName = str
# Party names appear in URLs (/releases/flags/{other}), audit actors, CSV and terminal
# output: letters, digits and . _ - only, not starting with punctuation (no "../", no "-rm",
# no "=cmd()" for spreadsheets).
_PARTY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# Bidirectional overrides reorder what a terminal shows ("Trojan source").
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _no_control_characters(value: str) -> str:
    """Refuse control characters in a name or purpose.

    Names and purposes are printed on terminals and in CSV, where a newline, escape
    sequence or NUL could forge lines or rewrite the screen.
    """
    if any(unicodedata.category(c) == "Cc" or c in _BIDI for c in value):
        raise ValueError("must not contain control characters (newlines, tabs, escapes, NUL)")
    return value


PlainText = Annotated[str, AfterValidator(_no_control_characters)]


def _threshold(value: Any) -> Threshold | None:
    """Parse a threshold in the body (a number or "auto"); a ValueError becomes a 422."""
    return None if value is None else Threshold.parse(value)


def _threshold_json(value: Threshold | str | None) -> float | str | None:
    """A threshold in JSON: the number or "auto" (the default "auto" comes unparsed)."""
    return None if value is None else Threshold.parse(value).to_json()


_THRESHOLD_JSON: list[dict[str, Any]] = [{"type": "number"}, {"const": "auto", "type": "string"}]
# In JSON a threshold stays a number or "auto" (the schema as `float | Literal["auto"]` had it);
# in Python it is the one `Threshold` type the worker and the linkage take.
_ThresholdField = Annotated[
    Threshold,
    BeforeValidator(_threshold),
    PlainSerializer(_threshold_json),
    WithJsonSchema({"anyOf": _THRESHOLD_JSON}),
]
_OptionalThresholdField = Annotated[
    Threshold | None,
    BeforeValidator(_threshold),
    PlainSerializer(_threshold_json),
    WithJsonSchema({"anyOf": [*_THRESHOLD_JSON, {"type": "null"}]}),
]


class ProjectCreate(BaseModel):
    """A new project."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: PlainText = Field(min_length=1, max_length=200)
    purpose: PlainText = Field(min_length=1, max_length=2000, description="Shown in every release.")
    linkage_schema: dict[str, Any] = Field(
        alias="schema", description="The linkage schema the parties encode with (JSON object)."
    )
    parties: list[Annotated[str, Field(pattern=_PARTY_PATTERN)]] = Field(
        min_length=2, max_length=63, description="Party names: letters, digits, '.', '_', '-'."
    )
    policy: SharingPolicy = Field(default_factory=SharingPolicy)
    retention_days: int = Field(default=365, ge=1, le=3650)
    threshold: _ThresholdField = Field(default="auto", validate_default=True, title="Threshold")
    duplicates: Literal["forbid", "linked"] = Field(
        default=DEFAULT_DUPLICATES,
        description="A partner's duplicate clients: 'linked' (the default: two records of one "
        "party share an entity when they match each other) or 'forbid' (at most one record "
        "per party per entity).",
    )
    key_check_value: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{32}$",
        description="Pin the secret's key check value now (else the first upload pins it).",
    )  # fmt: skip


class ProjectCreated(BaseModel):
    """The new project and its party tokens (shown once, stored only as hashes)."""

    project_id: str
    parties: dict[str, str]
    schema_fingerprint: str


class ProjectOut(BaseModel):
    """A project as its operator or parties see it."""

    id: str
    name: str
    purpose: str
    parties: list[str]
    schema_fingerprint: str
    bit_length: int
    key_check_value: str | None
    policy: SharingPolicy
    threshold: str
    threshold_pinned: float | None
    duplicates: str = "forbid"
    retention_days: int
    created_at: float
    expires_at: float
    current_run_id: str | None
    your_party: str | None = None
    your_grants: list[str] | None = None


class UploadOut(BaseModel):
    """An accepted upload: a delivery of encodings (snapshot or delta) or a withdrawal."""

    id: str
    party: str
    seq: int
    kind: Literal["snapshot", "delta", "withdrawal"]
    record_count: int
    content_digest: str
    created_at: float
    linked_run_id: str | None


class WithdrawalCreate(BaseModel):
    """Records to withdraw (consent withdrawn), named by their record keys."""

    model_config = ConfigDict(extra="forbid")

    record_keys: list[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]] = Field(
        min_length=1, max_length=1_000_000,
        description="The records' pseudonyms (pacelink withdraw computes them from your local "
        "IDs with your record key).",
    )  # fmt: skip
    allow_unknown: bool = Field(
        default=False,
        description="Accept the withdrawal although some keys name no record of yours (they "
        "are counted in the answer); else it is refused and nothing changes.",
    )


class WithdrawalOut(BaseModel):
    """An accepted withdrawal: it takes effect with the run queued for it."""

    id: str
    seq: int
    requested: int
    unknown: int
    run_id: str | None


class RunCreate(BaseModel):
    """Start a run."""

    model_config = ConfigDict(extra="forbid")

    threshold: _OptionalThresholdField = Field(
        default=None,
        title="Threshold",
        description="Override the project's threshold for this run.",
    )


class RunOut(BaseModel):
    """A run's state (the summary is for the operator only)."""

    id: str
    project_id: str
    status: Literal["queued", "running", "done", "failed"]
    stage: str
    progress: float
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    threshold_used: float | None
    threshold_method: str | None
    summary: dict[str, Any] | None = None


class CountsOut(BaseModel):
    """Overlap counts, suppressed and rounded."""

    project_id: str
    purpose: str
    run_id: str
    min_count: int
    round_to: int
    counts: list[dict[str, Any]]


class ScoresOut(BaseModel):
    """For the operator's threshold review."""

    project_id: str
    run_id: str
    threshold: float
    bin_edges: list[float]
    histogram: list[int]
    near_pairs: list[dict[str, Any]]


class AuditEntryOut(BaseModel):
    """One audit entry."""

    seq: int
    at: float
    actor: str
    action: str
    project_id: str | None
    policy: str | None
    detail: dict[str, Any]
    entry_hash: str


class AuditVerifyOut(BaseModel):
    """The result of checking the audit chain."""

    ok: bool
    entries: int
    problems: list[str]
