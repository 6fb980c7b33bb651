"""The lifecycle benchmark: a tiny run through a real unit, and its measures on hand-made data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import lifecycle
from benchmarks.synthetic import make_lifecycle


@pytest.mark.slow
def test_tiny_lifecycle_through_the_service(tmp_path: Path) -> None:
    """What must hold whatever the tuning: withdrawn records gone, every held record linked."""
    lc = make_lifecycle(300, 3, batches=3)
    result = lifecycle.run_lifecycle(
        lc, tmp_path, reference=False, in_process=True, log=lambda _: None
    )
    batches = result["batches"]
    assert [b["batch"] for b in batches] == [1, 2, 3]
    withdrawn = 0
    for figures, batch in zip(batches, lc.batches, strict=True):
        withdrawn += sum(len(ids) for ids in batch.withdrawals.values())
        assert figures["withdrawn_in_releases"] == 0, figures["withdrawn_in_releases_examples"]
        scan = figures["storage_scan"]
        assert scan["withdrawn_records"] == withdrawn
        assert scan["found"] == 0, scan["found_examples"]
        assert scan["files"] > 0
        assert figures["held_records_without_linkage_id"] == 0
        # Records per party at the unit = delivered (encoded) - withdrawn.
        assert figures["counts_reconcile"], figures["records_by_party"]
    assert withdrawn > 0
    # Every delta withdrew records of both partners, and the scan looked for them.
    assert batches[-1]["storage_scan"]["patterns"] >= 4 * withdrawn
    assert batches[0]["stability"] is None
    assert all(b["stability"]["people"] > 0 for b in batches[1:])
    json.dumps(result, allow_nan=False)  # the results file is plain JSON


def test_scan_storage_finds_bytes_in_any_file(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "blob.bin").write_bytes(b"\x00" * 100 + b"\x01\x02\x03" + b"\x00")
    (tmp_path / "unit.db").write_bytes(b"header 0123abcd trailer")
    found = lifecycle.scan_storage(
        tmp_path, {"raw": b"\x01\x02\x03", "hex": b"0123abcd", "absent": b"\xff\xfe"}
    )
    assert found == {"raw": ["a/b/blob.bin"], "hex": ["unit.db"]}


def _records(rows: list[tuple[str, str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["partner", "local_id", "person", "linkage_id"])


def test_stability_counts_people_with_a_record_in_both_batches() -> None:
    before = _records([
        ("a", "1", 1, "x"), ("b", "9", 1, "x"),  # person 1: both records keep x
        ("a", "2", 2, "y"), ("b", "8", 2, "y"),  # person 2: one record moves to z
        ("a", "3", 3, "w"),                      # person 3: withdrawn by batch 2
        ("a", "5", 5, ""),                       # person 5: rejected by the encoder
    ])  # fmt: skip
    after = _records([
        ("a", "1", 1, "x"), ("b", "9", 1, "x"),
        ("a", "2", 2, "y"), ("b", "8", 2, "z"),
        ("a", "4", 4, "v"),                      # person 4: new
        ("a", "5", 5, "u"),                      # person 5: corrected, a first ID
    ])  # fmt: skip
    s = lifecycle._stability(before, after, updated={("b", "8"), ("a", "5")})
    assert (s["people"], s["changed_people"], s["first_ids"]) == (2, 1, 1)
    assert s["stable_share"] == pytest.approx(0.5)
    assert (s["updated_people"], s["updated_stable_share"]) == (1, 0.0)


def _batch(n: int, f1: float, stable: float | None, found: int = 0) -> dict[str, object]:
    return {
        "batch": n,
        "quality": {"f1": f1},
        "from_scratch": {"f1": f1 + 0.001 * n},
        "stability": (
            None if stable is None else {"stable_share": stable, "updated_stable_share": 1.0}
        ),
        "withdrawn_in_releases": 0,
        "storage_scan": {"found": found},
    }


def test_targets() -> None:
    good = lifecycle.targets([_batch(1, 0.980, None), _batch(2, 0.979, 0.999)])
    assert good["stable_share_at_least_99.5%"] and good["last_f1_at_least_first_minus_0.002"]
    assert good["no_withdrawn_record_found"]
    assert good["max_f1_below_from_scratch"] == pytest.approx(0.002)
    bad = lifecycle.targets([_batch(1, 0.980, None), _batch(2, 0.977, 0.99, found=1)])
    assert not bad["stable_share_at_least_99.5%"]
    assert not bad["last_f1_at_least_first_minus_0.002"]
    assert not bad["no_withdrawn_record_found"]
