"""Partners with fewer columns: `--absent FEATURE` encodes a feature as missing and records it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from encoder.cli import app
from encoder.encode import EncodeError, EncodeOptions, encode_dataframe, encode_file
from encoder.fileformat import read_encodings
from encoder.fileheader import FeatureCoverage
from encoder.keys import Secret
from encoder.schema import load_schema, parse_schema
from tests.conftest import TEST_SECRET, schema_doc
from tests.encoder.test_encode import HEADER, ROWS, _key_map, _reference_bits, _write_csv

runner = CliRunner()
SCHEMA = load_schema("pace-default")
# pace-default without its year-of-birth salt: the bundled schema for a partnership where some
# partners hold no dates of birth.
UNSALTED = load_schema("pace-no-salt")


def _without(columns: set[str]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of ROWS with `columns` left out."""
    keep = [i for i, name in enumerate(HEADER) if name not in columns]
    return [HEADER[i] for i in keep], [[row[i] for i in keep] for row in ROWS]


def _blanked(columns: set[str]) -> list[list[str]]:
    """ROWS with every value of `columns` blank."""
    return [["" if HEADER[i] in columns else v for i, v in enumerate(row)] for row in ROWS]


def _encode(tmp_path: Path, src: Path, name: str, schema: Any = SCHEMA, **opts: Any) -> Any:
    options = EncodeOptions(**{"id_column": "client_ref", "consent_column": "consent", **opts})
    out = tmp_path / f"{name}.plk"
    return encode_file(src, schema, Secret(TEST_SECRET), out, options), read_encodings(out)


@pytest.mark.parametrize("absent", [{"sex"}, {"postcode"}, {"sex", "postcode"}])
def test_absent_columns_encode_as_blank_ones(tmp_path: Path, absent: set[str]) -> None:
    header, rows = _without(absent)
    lacking = _write_csv(tmp_path / "lacking.csv", rows, header=header)
    blank = _write_csv(tmp_path / "blank.csv", _blanked(absent))
    report, enc = _encode(tmp_path, lacking, "lacking", absent=frozenset(absent))
    blank_report, blank_enc = _encode(tmp_path, blank, "blank")
    # The oracle: the same records with blank values, encoded today's way.
    assert np.array_equal(enc.bits, blank_enc.bits)
    assert (tmp_path / "lacking.keys.csv").read_text() == (tmp_path / "blank.keys.csv").read_text()
    assert (report.encoded, report.rejected) == (blank_report.encoded, blank_report.rejected)
    assert report.reconciles()
    # Same schema, same secret: the unit sees the partnership's fingerprint and check value.
    assert enc.header["schema_fingerprint"] == blank_enc.header["schema_fingerprint"]
    assert enc.header["key_check_value"] == blank_enc.header["key_check_value"]
    # And clkhash, given the blank values, sets the same bits (no token for a missing value).
    encoded = _encoded(tmp_path / "lacking.keys.csv", _blanked(absent))
    assert np.array_equal(enc.bits, _oracle(encoded))


def _encoded(key_map: Path, rows: list[list[str]]) -> list[list[str]]:
    """`rows` that the key map lists, in its order (the rows of the `.plk`)."""
    ids = [local_id for _, local_id in _key_map(key_map)]
    by_id = {row[0]: row for row in rows}
    return [by_id[i] for i in ids]


def _oracle(rows: list[list[str]]) -> np.ndarray:
    """The bits clkhash sets for `rows`, the invalid postcode (treated as missing) blank."""
    return _reference_bits([["" if v == "not a postcode" else v for v in row] for row in rows])


def test_report_and_header_record_the_coverage(tmp_path: Path) -> None:
    header, rows = _without({"sex", "postcode"})
    src = _write_csv(tmp_path / "council.csv", rows, header=header)
    report, enc = _encode(tmp_path, src, "council", absent=frozenset({"postcode", "sex"}))
    # Schema order; optional features the file lacks are absent too.
    assert report.absent == ["sex", "postcode", "address_line", "ni_number"]
    assert report.features["sex"] == {
        "column": None, "absent": True, "present": 0, "coverage": 0.0
    }  # fmt: skip
    assert report.features["given_name"]["absent"] is False
    assert json.loads(report.to_json())["absent"] == report.absent
    coverage = {f["name"]: f for f in enc.header["features"]}
    for name in report.absent:
        assert coverage[name] == {"name": name, "present": 0, "absent": True}
    assert "absent" not in coverage["surname"] and coverage["surname"]["present"] > 0
    assert enc.plk_header.features[0].absent is False


def test_files_without_absent_features_and_old_headers_read() -> None:
    # A held feature writes no `absent` key (files stay as earlier encoders wrote them);
    # a coverage entry without the key, as older encoders wrote it, reads as held.
    assert FeatureCoverage(name="sex", present=3).model_dump_json() == '{"name":"sex","present":3}'
    assert FeatureCoverage.model_validate({"name": "sex", "present": 3}).absent is False
    with pytest.raises(ValueError, match="absent but 2 records"):
        FeatureCoverage(name="sex", present=2, absent=True)


def test_the_record_salt_cannot_be_absent(tmp_path: Path) -> None:
    # Under pace-default every record is salted by its year of birth: a file without dates of
    # birth could never link with a partner's, so it is refused rather than encoded.
    header, rows = _without({"date_of_birth"})
    src = _write_csv(tmp_path / "no_dob.csv", rows, header=header)
    with pytest.raises(EncodeError, match=r"--absent date_of_birth: the schema salts each record"):
        _encode(tmp_path, src, "no_dob", absent=frozenset({"date_of_birth"}))
    assert not (tmp_path / "no_dob.plk").exists()


def test_a_derived_feature_follows_an_absent_source(tmp_path: Path) -> None:
    header, rows = _without({"date_of_birth"})
    src = _write_csv(tmp_path / "no_dob.csv", rows, header=header)
    opts: dict[str, Any] = {"schema": UNSALTED, "absent": frozenset({"date_of_birth"})}
    report, enc = _encode(tmp_path, src, "no_dob", **opts)
    _, enc_again = _encode(tmp_path, src, "no_dob_again", **opts)
    assert np.array_equal(enc.bits, enc_again.bits)
    assert "whole_date_of_birth" in report.absent and "date_of_birth" in report.absent
    # Every record is now valid (the impossible dates were the rejections), encoded as with a
    # blank date of birth.
    blank_src = _write_csv(tmp_path / "blank_dob.csv", _blanked({"date_of_birth"}))
    blank_report, blank_enc = _encode(tmp_path, blank_src, "blank_dob", schema=UNSALTED)
    assert np.array_equal(enc.bits, blank_enc.bits)
    assert report.encoded == blank_report.encoded == 6
    # One of two sources absent: the derived feature still holds the other.
    header, rows = _without({"given_name"})
    src = _write_csv(tmp_path / "no_given.csv", rows, header=header)
    report, _ = _encode(tmp_path, src, "no_given", absent=frozenset({"given_name"}))
    assert "given_name" in report.absent and "names_any_order" not in report.absent
    assert report.features["names_any_order"]["present"] == report.encoded


def test_absent_works_in_memory_and_on_worker_threads(tmp_path: Path) -> None:
    header, rows = _without({"sex"})
    options = EncodeOptions(id_column="client_ref", absent=frozenset({"sex"}))
    memory = encode_dataframe(pd.DataFrame(rows, columns=header), SCHEMA, Secret(TEST_SECRET),
                              options)  # fmt: skip
    src = _write_csv(tmp_path / "f.csv", rows, header=header)
    threaded = EncodeOptions(id_column="client_ref", absent=frozenset({"sex"}), workers=2,
                             chunk_rows=1000)  # fmt: skip
    big = _write_csv(tmp_path / "big.csv", _many(2500), header=header)
    encode_file(big, SCHEMA, Secret(TEST_SECRET), tmp_path / "big.plk", threaded)
    serial = EncodeOptions(id_column="client_ref", absent=frozenset({"sex"}), workers=1,
                           chunk_rows=1000)  # fmt: skip
    encode_file(big, SCHEMA, Secret(TEST_SECRET), tmp_path / "big1.plk", serial)
    assert np.array_equal(
        read_encodings(tmp_path / "big.plk").bits, read_encodings(tmp_path / "big1.plk").bits
    )
    encode_file(src, SCHEMA, Secret(TEST_SECRET), tmp_path / "f.plk", options)
    assert np.array_equal(memory.bits, read_encodings(tmp_path / "f.plk").bits)
    assert memory.report.absent[0] == "sex"


def _many(n: int) -> list[list[str]]:
    _, rows = _without({"sex"})
    return [[f"P{i}", *rows[i % len(rows)][1:]] for i in range(n)]


def _refused(tmp_path: Path, src: Path, **opts: Any) -> str:
    with pytest.raises(EncodeError) as info:
        _encode(tmp_path, src, "refused", **opts)
    assert not (tmp_path / "refused.plk").exists()
    return str(info.value)


def test_refusals_name_the_option(tmp_path: Path) -> None:
    header, rows = _without({"sex"})
    src = _write_csv(tmp_path / "no_sex.csv", rows, header=header)
    full = _write_csv(tmp_path / "full.csv", ROWS)
    message = _refused(tmp_path, src, absent=frozenset({"gender"}))
    assert "--absent names features not in the schema: gender" in message
    message = _refused(tmp_path, src, absent=frozenset({"whole_date_of_birth"}))
    assert "--absent whole_date_of_birth" in message and "--absent date_of_birth" in message
    message = _refused(tmp_path, full, absent=frozenset({"sex"}))
    assert "--absent sex, but the input has a column 'sex'" in message
    with pytest.raises(EncodeError, match="--absent sex and --column sex=Gender"):
        EncodeOptions(absent=frozenset({"sex"}), columns={"sex": "Gender"})
    everything = frozenset(f.name for f in SCHEMA.hashed_features if not f.extension.derived_from)
    only_id = _write_csv(tmp_path / "ids.csv", [["C1", "Y"]], header=["client_ref", "consent"])
    message = _refused(tmp_path, only_id, schema=UNSALTED, absent=everything)
    assert "no feature of the schema is read from the input" in message
    assert "--absent given_name" in message


def test_missing_column_message_names_absent(tmp_path: Path) -> None:
    header, rows = _without({"sex"})
    src = _write_csv(tmp_path / "no_sex.csv", rows, header=header)
    message = _refused(tmp_path, src)
    assert "column(s) not found: 'sex' (feature sex)" in message
    assert "--column FEATURE=COLUMN" in message and "--absent FEATURE" in message


def _mini_schema(sex_format: dict[str, Any], **extension: Any) -> Any:
    name = {
        "identifier": "name",
        "format": {"type": "string", "encoding": "utf-8"},
        "hashing": {
            "comparison": {"type": "ngram", "n": 2},
            "strategy": {"bitsPerFeature": 50},
            "hash": {"type": "blakeHash"},
        },
    }
    sex = {"identifier": "sex", "format": sex_format,
           "hashing": {"comparison": {"type": "exact"}, "strategy": {"bitsPerToken": 10},
                       "hash": {"type": "blakeHash"}}, **extension}  # fmt: skip
    return parse_schema(schema_doc([name, sex]), "mini")


def test_ignored_and_blank_rejecting_features_cannot_be_absent() -> None:
    frame = pd.DataFrame({"name": ["Ann", "Bob"]})
    secret = Secret(TEST_SECRET)
    enum = {"type": "enum", "values": ["M", "F"]}
    schema = _mini_schema(enum)  # no missingValue: a blank sex is invalid, and rejected
    with pytest.raises(EncodeError, match=r"--absent sex: the schema does not accept a blank"):
        encode_dataframe(frame, schema, secret, EncodeOptions(absent=frozenset({"sex"})))
    with pytest.raises(EncodeError, match=r"--absent rec_id: the schema ignores rec_id"):
        encode_dataframe(frame, schema, secret, EncodeOptions(absent=frozenset({"rec_id"})))
    # Invalid blanks treated as missing: absent is allowed, no record is listed or counted.
    lenient = _mini_schema(enum, onInvalid="missing")
    enc = encode_dataframe(frame, lenient, secret, EncodeOptions(absent=frozenset({"sex"})))
    assert enc.report.encoded == 2 and enc.report.absent == ["sex"]
    assert enc.report.invalid_treated_as_missing == {}
    with_blank = encode_dataframe(frame.assign(sex=""), lenient, secret)
    assert np.array_equal(enc.bits, with_blank.bits)


def test_cli_absent_report_and_inspect(tmp_path: Path, secret_file: Path) -> None:
    header, rows = _without({"sex", "postcode"})
    src = _write_csv(tmp_path / "union.csv", rows, header=header)
    report_path, out = tmp_path / "REPORT.json", tmp_path / "union.plk"
    result = runner.invoke(app, [
        "encode", str(src), "--schema", "pace-default", "--secret-file", str(secret_file),
        "--out", str(out), "--id-column", "client_ref", "--consent-column", "consent",
        "--absent", "sex", "--absent", "postcode", "--report", str(report_path),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "absent (missing in every record)" in result.output
    assert json.loads(report_path.read_text())["absent"][:2] == ["sex", "postcode"]
    shown = runner.invoke(app, ["inspect", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "absent features" in shown.output and "sex, postcode" in shown.output
    assert "not held" in shown.output
    as_json = json.loads(runner.invoke(app, ["inspect", str(out), "--json"]).output)
    absent = [f["name"] for f in as_json["features"] if f.get("absent")]
    assert absent[:2] == ["sex", "postcode"]

    refused = runner.invoke(app, [
        "encode", str(src), "--schema", "pace-default", "--secret-file", str(secret_file),
        "--out", str(tmp_path / "x.plk"), "--id-column", "client_ref", "--absent", "sex",
    ])  # fmt: skip
    assert refused.exit_code != 0
    assert "--absent FEATURE" in refused.output and "'postcode'" in refused.output
    assert "Traceback" not in refused.output


def test_decoys_of_a_file_without_a_feature_do_not_hold_it() -> None:
    # Decoys recombine the file's own values: an absent feature stays absent in them, so
    # the header (which counts decoys) still says present 0.
    raw = copy.deepcopy(SCHEMA.raw)
    raw["hardening"]["decoys"] = 0.5
    header, rows = _without({"sex"})
    options = EncodeOptions(id_column="client_ref", absent=frozenset({"sex"}))
    enc = encode_dataframe(pd.DataFrame(rows, columns=header), parse_schema(raw, "decoys"),
                           Secret(TEST_SECRET), options)  # fmt: skip
    assert enc.report.decoys > 0
    coverage = {f.name: f for f in enc.plk_header.features}
    assert coverage["sex"].absent and coverage["sex"].present == 0
    assert coverage["surname"].present == enc.report.encoded + enc.report.decoys
