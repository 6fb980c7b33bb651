"""Turn raw identifier values into the canonical strings that partners encode.

One module per field holds that field's scalar rule (the reference: one value in, its canonical
form, "" or `InvalidValue` out) and, where one is exact, its vectorised fast path, side by side.
`FIELDS` is the one registry of both; `STANDARDISERS` is its scalar view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import pyarrow as pa
import pyarrow.compute as pc

from encoder.standardise.address import address_fast_path, standardise_address
from encoder.standardise.date import date_fast_path, standardise_date
from encoder.standardise.invalid import InvalidValue
from encoder.standardise.missing import is_missing
from encoder.standardise.name import name_fast_path, standardise_name
from encoder.standardise.ni_number import ni_number_fast_path, standardise_ni_number
from encoder.standardise.postcode import postcode_fast_path, standardise_postcode
from encoder.standardise.sex import standardise_sex

__all__ = [
    "FIELDS",
    "STANDARDISERS",
    "FieldStandardiser",
    "InvalidValue",
    "is_missing",
    "standardise_address",
    "standardise_array",
    "standardise_date",
    "standardise_name",
    "standardise_ni_number",
    "standardise_postcode",
    "standardise_sex",
]


@dataclass(frozen=True)
class FieldStandardiser:
    """One field's standardisation: its scalar rule and, where one is exact, its fast path.

    Attributes:
        scalar: The rule for one value: the canonical string, "" if missing, or `InvalidValue`.
        fast_path: Many ASCII values at once, for the common shapes: each non-null result equals
            `scalar`'s for that value, null means `scalar` must decide. None for a field whose
            values are too few or too varied to gain from one.
    """

    scalar: Callable[[str], str]
    fast_path: Callable[[pa.Array], pa.Array] | None = None


# Read-only: the encoder looks standardisers up by field type, and a caller mutating the shared
# table would silently change how every other field is standardised. The keys are the values of
# a feature's "standardise" key in a linkage schema (encoder.schema.StandardiserName).
FIELDS: Mapping[str, FieldStandardiser] = MappingProxyType(
    {
        "name": FieldStandardiser(standardise_name, name_fast_path),
        "date": FieldStandardiser(standardise_date, date_fast_path),
        "postcode": FieldStandardiser(standardise_postcode, postcode_fast_path),
        "sex": FieldStandardiser(standardise_sex),
        "ni_number": FieldStandardiser(standardise_ni_number, ni_number_fast_path),
        "address": FieldStandardiser(standardise_address, address_fast_path),
    }
)

#: Each field's scalar rule, the view of `FIELDS` that value-at-a-time callers use.
STANDARDISERS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {kind: field.scalar for kind, field in FIELDS.items()}
)


def standardise_array(kind: str, values: pa.Array) -> pa.Array | None:
    """Standardise many values at once where a vectorised fast path is exact.

    The common, clean shapes (an ASCII single-word name, a well-formed postcode or NI number,
    an ASCII address line) are standardised by Arrow's compute kernels or numba kernels over
    Arrow's buffers. Every non-null result equals the scalar standardiser's output for that
    value (tests compare them); null means "not handled here": the caller must call the scalar
    standardiser, which also decides what is missing or invalid.

    Args:
        kind: A key of FIELDS.
        values: Raw values, an Arrow string array without nulls.

    Returns:
        The results with nulls where the scalar function must decide, or None when `kind`
        has no fast path.
    """
    field = FIELDS.get(kind)
    if field is None or field.fast_path is None or len(values) == 0:
        return None
    out = field.fast_path(values)
    # The fast paths read bytes as ASCII characters; anything else is the scalar rule's.
    return pc.if_else(pc.string_is_ascii(values), out, pa.scalar(None, pa.string()))
