"""The encode report: what happened to every input record of a run; it stays with the partner."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EncodeReport"]


@dataclass
class EncodeReport:
    """What happened to every input record. `records_in` = encoded + excluded + rejected.

    `invalid_treated_as_missing` counts encoded records (never rejected ones) whose invalid
    value was encoded as missing; each is a `treated as missing` line of the rejects file.
    `record_keys` says whether the output carries record pseudonyms, and
    `record_key_check_value` names the record key that made them (None without).
    `decoys` counts the decoy records a schema's `hardening.decoys` added: extra rows of the
    `.plk` (and of the key map, with an empty local_id), made by the encoder, not input
    records, so not in `records_in`; the `.plk` holds `encoded + decoys` rows. This report
    stays with the partner: the `.plk` header does not tell decoys from records.
    `absent` lists the features the input does not hold, in schema order: declared with
    `--absent`, optional ones without a column, and derived ones whose sources are all
    absent; each is encoded as missing in every record (`features[name]["absent"]`).
    """

    input: str
    records_in: int = 0
    encoded: int = 0
    excluded_no_consent: int = 0
    rejected: int = 0
    rejected_by_field: dict[str, int] = field(default_factory=dict)
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    invalid_treated_as_missing: dict[str, int] = field(default_factory=dict)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    schema_fingerprint: str = ""
    key_check_value: str = ""
    record_keys: bool = False
    record_key_check_value: str | None = None
    decoys: int = 0
    bit_length: int = 0
    output: str | None = None
    key_map: str | None = None
    rejects_file: str | None = None
    seconds: float = 0.0
    records_per_second: float = 0.0

    def reconciles(self) -> bool:
        """Whether `records_in` = encoded + excluded_no_consent + rejected."""
        return self.records_in == self.encoded + self.excluded_no_consent + self.rejected

    def to_json(self) -> str:
        """The report as `REPORT.json` holds it."""
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"
