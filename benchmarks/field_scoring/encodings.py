"""Segmented encodings built with today's encoder: one small schema per field group."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from benchmarks.harness import schema_document
from benchmarks.quality.datasets import I64, U8, Party
from encoder.encode import EncodeOptions, encode_dataframe
from encoder.keys import Secret
from encoder.schema import parse_schema
from linkage_unit.matching.segments import Segment

__all__ = [
    "GROUPS",
    "SKIP",
    "Group",
    "PartyEncodings",
    "encode_segmented",
    "layout",
    "segment_schema",
]


@dataclass(frozen=True)
class Group:
    """A field group's segment: its features of the default schema, bits and level kind."""

    name: str
    features: tuple[str, ...]
    bits: int
    kind: str


#: The segmented layout, in filter order (1,088 bits in all).
GROUPS: Final = (
    Group("names", ("given_name", "surname", "names_any_order"), 512, "name"),
    Group("date_of_birth", ("date_of_birth", "whole_date_of_birth"), 256, "date"),
    Group("sex", ("sex",), 64, "exact"),
    Group("postcode", ("postcode",), 64, "postcode"),
    Group("address_line", ("address_line",), 64, "name"),
    Group("ni_number", ("ni_number",), 128, "identifier"),
)

#: Segments the Fellegi-Sunter model leaves out.  The address line agrees when the postcode
#: does, for relatives as for matches: scoring both counts one piece of household evidence
#: twice (on the synthetic scenarios, relatives were then linked: precision 0.96-0.98
#: instead of 0.995 at 1,000 people).
SKIP: tuple[str, ...] = ("address_line",)


def segment_schema(group: Group, *, salted: bool = True, stand_in: bool = False) -> dict[str, Any]:
    """The default schema cut down to one group: its features, its length, its salt if any.

    Args:
        group: The field group.
        salted: Keep the default's year-of-birth salt where the group holds the date of birth.
        stand_in: Salt a group without the date of birth too, by adding the date of birth
            with one bit per digit (the least the encoder accepts: ``recordSalt`` must name a
            hashed feature).  Those few bits make the segment a little *more* exposed than a
            salted segment of the group alone: a conservative stand-in for attacks.
    """
    doc = schema_document()
    features = doc["features"]
    doc["features"] = [f for f in features if f["identifier"] in group.features]
    doc["clkConfig"]["l"] = group.bits
    salt = doc.get("hardening", {}).get("recordSalt")
    doc.pop("hardening", None)
    if salted and salt is not None:
        if salt["feature"] not in group.features and stand_in:
            extra = copy.deepcopy(next(f for f in features if f["identifier"] == salt["feature"]))
            extra["hashing"]["strategy"] = {"bitsPerToken": 1}
            doc["features"].append(extra)
        if any(f["identifier"] == salt["feature"] for f in doc["features"]):
            doc["hardening"] = {"recordSalt": salt}
    return doc


def layout() -> list[Segment]:
    """The segments of :data:`GROUPS` as bit ranges of the concatenated filter."""
    out, start = [], 0
    for g in GROUPS:
        out.append(Segment(g.name, start, start + g.bits, g.kind))
        start += g.bits
    return out


def _encode(frame: pd.DataFrame, doc: dict[str, Any], secret: Secret) -> tuple[U8, list[str]]:
    enc = encode_dataframe(
        frame,
        parse_schema(doc, "segment"),
        secret,
        EncodeOptions(id_column="local_id", max_reject_rate=1.0),
    )
    return np.asarray(enc.bits), list(enc.local_ids or [])


@dataclass(frozen=True, eq=False)
class PartyEncodings:
    """One party's records under every encoding compared, row for row.

    Attributes:
        record: The default schema (one record-level filter, year salt), as today.
        record_unsalted: The default schema without its salt.
        segmented: The segments concatenated, the date-of-birth segment salted.
        segmented_salted: The same with every segment salted by the year of birth,
            emulated (see :func:`encode_segmented`).
        rows: Each encoded record's row in the party's frame.
    """

    record: U8
    record_unsalted: U8
    segmented: U8
    segmented_salted: U8
    rows: I64


def _segments(party: Party, ids: list[str], secret: Secret, salt_all: bool) -> U8:
    position = pd.Series(np.arange(len(ids)), index=ids)
    seg = np.zeros((len(ids), sum(g.bits for g in GROUPS) // 8), np.uint8)
    # The year of birth as the encoder standardises it (the clean text is ISO dates).
    year = party.clean["date_of_birth"].fillna("").astype(str).str[:4].to_numpy()
    byte = 0
    for g in GROUPS:
        doc = segment_schema(g)
        if not salt_all or "hardening" in doc:
            parts = [(party.frame, secret)]
        else:
            # Emulated salt: a segment whose schema cannot name the date of birth is encoded
            # year group by year group, each under its own secret.  As with the encoder's
            # keyed permutation, records of one salt compare as before and records of two
            # salts look unrelated; only the linkage figures are meaningful, not attacks.
            parts = [
                (party.frame[year == y], Secret(f"{secret.value}|salt|{y}"))
                for y in np.unique(year)
            ]
        for frame, key in parts:
            bits, seg_ids = _encode(frame, doc, key)
            where = position.reindex(seg_ids).to_numpy()
            ok = ~np.isnan(where)
            seg[where[ok].astype(np.int64), byte : byte + g.bits // 8] = bits[ok]
        byte += g.bits // 8
    return seg


def encode_segmented(party: Party, secret: Secret) -> PartyEncodings:
    """One party's records under the record-level and the segmented encodings.

    Every encoding has a row per record the default schema accepted; a segment whose group
    rejected the record stays all zero (missing).
    """
    full, ids = _encode(party.frame, schema_document(), secret)
    unsalted = schema_document()
    unsalted.pop("hardening", None)
    plain, plain_ids = _encode(party.frame, unsalted, secret)
    if plain_ids != ids:
        raise ValueError(f"{party.name}: the salted and unsalted encodings hold other records")
    frame_row = pd.Series(np.arange(len(party.frame)), index=party.frame["local_id"])
    return PartyEncodings(
        full,
        plain,
        _segments(party, ids, secret, salt_all=False),
        _segments(party, ids, secret, salt_all=True),
        frame_row.reindex(ids).to_numpy(np.int64),
    )
