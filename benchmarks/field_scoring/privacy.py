"""Attacks of the privacy harness on one segment, and on all segments concatenated."""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from benchmarks.field_scoring.encodings import GROUPS, segment_schema
from benchmarks.harness import schema_document
from benchmarks.privacy.assess import run_attack
from benchmarks.privacy.frequency import frequency_attack, value_reidentified
from benchmarks.privacy.population import AttackData, attack_data, reidentified
from encoder.keys import Secret
from encoder.schema import parse_schema

__all__ = ["privacy"]


def _privacy_schemas() -> list[tuple[str, str, dict[str, Any]]]:
    """Schemas attacked for the privacy figures: (key for ``--only``, label, document)."""
    unsalted = schema_document()
    unsalted.pop("hardening", None)
    names, dob, sex, postcode = GROUPS[0], GROUPS[1], GROUPS[2], GROUPS[3]
    return [
        ("record", "whole record, year salt (shipped)", schema_document()),
        ("record-unsalted", "whole record, unsalted", unsalted),
        ("names", f"names segment ({names.bits} bits, unsalted)", segment_schema(names)),
        (
            "dob-unsalted",
            f"date-of-birth segment ({dob.bits} bits, unsalted)",
            segment_schema(dob, salted=False),
        ),
        ("dob", f"date-of-birth segment ({dob.bits} bits, year salt)", segment_schema(dob)),
        ("sex", f"sex segment ({sex.bits} bits)", segment_schema(sex)),
        ("postcode", f"postcode segment ({postcode.bits} bits)", segment_schema(postcode)),
        (
            "names-salted",
            f"names segment ({names.bits} bits, year salt, stand-in)",
            segment_schema(names, stand_in=True),
        ),
        (
            "sex-salted",
            f"sex segment ({sex.bits} bits, year salt, stand-in)",
            segment_schema(sex, stand_in=True),
        ),
        (
            "postcode-salted",
            f"postcode segment ({postcode.bits} bits, year salt, stand-in)",
            segment_schema(postcode, stand_in=True),
        ),
    ]


def _segmented_attack_data(records: int, seed: int) -> AttackData:
    """Every segment salted (stand-ins), concatenated, against the default's plaintext view.

    Each group is encoded by the harness under one secret and one seed (the same people in
    the same order); the attacker's register and the schema it reasons with (year salt
    included) are those of the default schema, which holds every field.
    """
    secret = Secret(secrets.token_hex(32))
    whole = attack_data(
        parse_schema(schema_document(), "default"), records, seed=seed, secret=secret
    )
    parts = [
        attack_data(
            parse_schema(segment_schema(g, stand_in=True), g.name),
            records,
            seed=seed,
            secret=secret,
        ).encodings
        for g in GROUPS
    ]
    return replace(whole, encodings=np.ascontiguousarray(np.concatenate(parts, axis=1)))


def privacy(records: int, attacks: Sequence[str], seed: int, only: Sequence[str]) -> None:
    """Run the privacy harness's attacks on one-segment encodings and the whole record."""
    print("| encoding | attack | records re-identified | values re-identified | seconds |")
    print("|---|---|---|---|---|")
    targets: list[tuple[str, str, dict[str, Any] | None]] = [*_privacy_schemas()]
    targets.append(("segmented-salted", "all segments concatenated, year salt (stand-ins)", None))
    for key, label, doc in targets:
        if only and key not in only:
            continue
        if doc is None:
            data = _segmented_attack_data(records, seed)
        else:
            data = attack_data(parse_schema(copy.deepcopy(doc), label), records, seed=seed)
        for attack in attacks:
            value = "-"
            if attack == "frequency":  # also the share of *values* (name, date) singled out
                started = time.perf_counter()
                guesses = frequency_attack(data)
                share, seconds = reidentified(data, guesses), time.perf_counter() - started
                value = f"{value_reidentified(data, guesses):.2%}"
            else:
                share, seconds = run_attack(attack, data, seed)
            print(f"| {label} | {attack} | {share:.2%} | {value} | {seconds:.0f} |", flush=True)
