"""Partners' files: column headers, formats, error profile; the PACE partner catalogue."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from benchmarks.synthetic.population import PACE_FIELDS
from benchmarks.synthetic.variation import PRESETS, TYPICAL, ErrorProfile, repr_without_defaults

__all__ = [
    "CATALOGUE_FILE",
    "PACE_COLUMNS",
    "ColumnNames",
    "PartnerSpec",
    "SexCoding",
    "partner_catalogue",
    "spec_named",
]

CATALOGUE_FILE: Final = Path(__file__).with_name("partners.json")
"""The partner catalogue (see :func:`partner_catalogue`)."""

SexCoding = Literal["M/F", "Male/Female", "1/2"]


@dataclass(frozen=True)
class ColumnNames:
    """A partner's header for each column (defaults: the PACE names).

    Attributes:
        local_id: The partner's own record identifier.
        given_name: Given name.
        surname: Surname.
        date_of_birth: Date of birth.
        sex: Sex.
        postcode: Postcode.
        address_line: First line of the address.
        ni_number: National Insurance number.
        consent: Consent to share (``Y``/``N``), where the partner records it.
        previous_surname: The surname before a change, where the partner records it.
    """

    local_id: str = "local_id"
    given_name: str = "given_name"
    surname: str = "surname"
    date_of_birth: str = "date_of_birth"
    sex: str = "sex"
    postcode: str = "postcode"
    address_line: str = "address_line"
    ni_number: str = "ni_number"
    consent: str = "consent"
    previous_surname: str = "previous_surname"

    def __repr__(self) -> str:
        """The headers, leaving out ``previous_surname`` (issue 13) at its default."""
        shown = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.name != "previous_surname" or getattr(self, f.name) != f.default
        ]
        return f"ColumnNames({', '.join(shown)})"

    def header(self, field: str) -> str:
        """The partner's header of a canonical column.

        Args:
            field: ``local_id``, one of :data:`PACE_FIELDS`, or ``consent``.

        Returns:
            The header the partner uses.
        """
        name: str = getattr(self, field)
        return name


PACE_COLUMNS: Final = ColumnNames()
"""The canonical column names."""


@dataclass(frozen=True)
class PartnerSpec:
    """One partner's file: who is in it, how messy it is, and how it is laid out.

    Attributes:
        name: Partner name (a file-name-safe identifier, e.g. ``skills_agency``).
        coverage: Fraction of the population the partner holds records about.
        profile: The error profile of its records.
        columns: Its column headers.
        date_format: ``strftime`` format of its dates of birth.
        sex_coding: ``M/F``, ``Male/Female`` or ``1/2`` (1 = male, 2 = female).
        has_address_line: Whether its file has the first address line.
        has_ni_number: Whether its file has the National Insurance number.
        id_prefix: Prefix of its local IDs (``SDS`` gives ``SDS-000123``).
        consent_refusal_rate: Share of ``N`` in a consent column; ``None``: no such column.
        uppercase: Whether its system stores names, postcode and address in capitals.
        absent: Person fields its file does not have at all (no column, not blank values):
            e.g. ``{"sex"}`` for a council extract without sex, ``{"postcode"}`` for a
            union-learning list. The ground truth still covers its records. Default: none.
        has_previous_surname: Whether its file has a previous-surname column: the surname
            before a change, where the generator changed it (empty otherwise). Default: no.

    The last two are left out of ``repr`` at their defaults, so that the partners made before
    they existed (and the fixed-seed digests of their files) are unchanged.
    """

    name: str
    coverage: float
    profile: ErrorProfile = TYPICAL
    columns: ColumnNames = PACE_COLUMNS
    date_format: str = "%Y-%m-%d"
    sex_coding: SexCoding = "M/F"
    has_address_line: bool = True
    has_ni_number: bool = False
    id_prefix: str = "ID"
    consent_refusal_rate: float | None = None
    uppercase: bool = False
    absent: frozenset[str] = frozenset()
    has_previous_surname: bool = False

    def __post_init__(self) -> None:
        """Check the coverage, the name and the absent fields."""
        if not 0.0 <= self.coverage <= 1.0:
            raise ValueError(f"{self.name}: coverage {self.coverage} is not between 0 and 1")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"partner name {self.name!r} is not file-name safe")
        unknown = sorted(set(self.absent) - set(PACE_FIELDS))
        if unknown:
            raise ValueError(
                f"{self.name}: absent {', '.join(unknown)} not person fields "
                f"({', '.join(PACE_FIELDS)})"
            )
        if {"given_name", "surname"} <= set(self.absent):
            raise ValueError(f"{self.name}: a partner file needs at least one name column")

    def __repr__(self) -> str:
        """The fields, leaving out ``absent`` and ``has_previous_surname`` at their defaults."""
        return repr_without_defaults(self, _WIDENED)

    def present_fields(self) -> tuple[str, ...]:
        """The person fields that the partner's file has, in canonical order.

        Returns:
            A subset of :data:`PACE_FIELDS`.
        """
        return tuple(
            f
            for f in PACE_FIELDS
            if (f != "address_line" or self.has_address_line)
            and (f != "ni_number" or self.has_ni_number)
            and f not in self.absent
        )

    def missing_fields(self) -> frozenset[str]:
        """The person fields that the partner's file lacks (no column at all).

        Returns:
            :data:`PACE_FIELDS` less :meth:`present_fields`.
        """
        return frozenset(PACE_FIELDS) - set(self.present_fields())


# Fields added when the generator was widened (issue 13): repr shows them only when set.
_WIDENED: Final = frozenset({"absent", "has_previous_surname"})


def spec_named(partners: Sequence[PartnerSpec], name: str) -> PartnerSpec:
    """The partner of that name among a scenario's."""
    for spec in partners:
        if spec.name == name:
            return spec
    raise KeyError(name)


# ---------------------------------------------------------------------------------------------
# Partner catalogue and scenarios
# ---------------------------------------------------------------------------------------------


def _profile(preset: str, changes: Mapping[str, Any]) -> ErrorProfile:
    """A preset error profile with some of its rates changed (a field's or a scalar)."""
    profile = PRESETS[preset]
    replaced: dict[str, Any] = {}
    for key, value in changes.items():
        current = getattr(profile, key)
        replaced[key] = dataclasses.replace(current, **value) if isinstance(value, dict) else value
    return dataclasses.replace(profile, **replaced)


def partner_catalogue() -> dict[str, PartnerSpec]:
    """The partners of a PACE-style partnership, with realistic coverage and file layouts.

    The catalogue is :data:`CATALOGUE_FILE`: per partner, the :class:`PartnerSpec` fields,
    ``profile`` naming a preset of :data:`PRESETS` (``profile_changes`` changes some of its
    rates) and ``columns`` the headers that differ from the PACE names.

    Returns:
        Specifications by name: ``skills_agency``, ``benefits_dept``, ``tax_dept``,
        ``council``, ``college`` and ``sample_partner`` (the bundled sample's layout); and
        those of the heterogeneous partnership (issue 13): ``wide_skills_agency``,
        ``wide_benefits_dept`` (with a previous-surname column), ``council_no_sex``,
        ``union_learning`` (no postcode) and ``community_referrals`` (names, date of birth
        and sex only).
    """
    entries: dict[str, dict[str, Any]] = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    catalogue = {}
    for name, entry in entries.items():
        fields = dict(entry)
        profile = _profile(fields.pop("profile"), fields.pop("profile_changes", {}))
        columns = ColumnNames(**fields.pop("columns"))
        if "absent" in fields:
            fields["absent"] = frozenset(fields["absent"])
        catalogue[name] = PartnerSpec(name=name, profile=profile, columns=columns, **fields)
    return catalogue
