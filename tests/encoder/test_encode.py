"""The encoding pipeline on real files: formats, consent, rejects, bad input, counts reconcile."""

from __future__ import annotations

import csv
import hmac
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clkhash import clk

from encoder import encode as encode_module
from encoder.chunks import EncodingKeys
from encoder.encode import EncodeError, EncodeOptions, encode_dataframe, encode_file, output_paths
from encoder.fileformat import read_encodings
from encoder.hardening import keyed_permutation, permute_reference
from encoder.keys import Secret, hardening_key, key_check_value
from encoder.read import InputError
from encoder.schema import load_schema, parse_schema
from encoder.standardise import STANDARDISERS, standardise_date
from tests.conftest import TEST_SECRET

HEADER = ["client_ref", "given_name", "surname", "date_of_birth", "sex", "postcode", "consent"]
ROWS = [
    ["C001", "Seán", "O'Neill", "12 Mar 1985", "M", "eh11aa", "Y"],
    ["C002", "Mary-Jane", "MacDonald", "03/04/1979", "female", "EH1 1AA", "yes"],
    ["C003", "Anna", "Smith-Jones", "1990-02-28", "F", "G2 4JR", "N"],
    ["C004", "Bob", "McDonald", "31/02/1985", "M", "AB10 1AQ", "Y"],  # impossible date
    ["C005", "Zoë", "Łukasiewicz", "1 January 1960", "2", "KY16 9AJ", "Y"],
    ["C006", "", "Brown", "", "", "", "Y"],  # sparse but valid: missing values set no bits
    ["C007", "Tom", "Smith", "15/13/1990", "M", "DD1 4HN", "Y"],  # month 13
    ["C008", "Ann", "Lee", "07/07/1977", "Q", "not a postcode", "y"],  # bad postcode
]


def _write_csv(path: Path, rows: list[list[str]], delimiter: str = ",",
               encoding: str = "utf-8", header: list[str] = HEADER) -> Path:  # fmt: skip
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _key_map(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["row", "local_id"]
    return [(row, local_id) for row, local_id in rows[1:]]


def _encode(tmp_path: Path, src: Path, name: str = "out", **opts: Any) -> Any:
    options = EncodeOptions(**{"id_column": "client_ref", "consent_column": "consent", **opts})
    schema = load_schema("pace-default")
    return encode_file(src, schema, Secret(TEST_SECRET), tmp_path / f"{name}.plk", options)


def _encode_rows(rows: list[list[str]]) -> Any:
    """`rows` encoded in memory, as `_encode` encodes them from a file."""
    frame = pd.DataFrame(rows, columns=HEADER)
    options = EncodeOptions(id_column="client_ref", consent_column="consent")
    return encode_dataframe(frame, load_schema("pace-default"), Secret(TEST_SECRET), options)


def _refusal(out: Path, src: Path, name: str) -> str:
    """The message of the EncodeError that encoding `src` into a new folder `out` raises."""
    out.mkdir()
    with pytest.raises(EncodeError) as info:
        _encode(out, src, name)
    return str(info.value)


def _reference_bits(rows: list[list[str]]) -> np.ndarray:
    """Clkhash on the standardised values: the oracle for what pacelink must produce."""
    schema = load_schema("pace-default")
    std = {
        "given_name": STANDARDISERS["name"], "surname": STANDARDISERS["name"],
        "date_of_birth": standardise_date, "sex": STANDARDISERS["sex"],
        "postcode": STANDARDISERS["postcode"],
    }  # fmt: skip
    records = []
    for row in rows:
        values = dict(zip(HEADER, row, strict=True))
        canonical = {name: func(values[name]) for name, func in std.items()}
        canonical |= schema.derived_values(canonical)
        records.append([canonical.get(f.name, "") for f in schema.features])
    filters = clk.generate_clks(records, schema.clk, TEST_SECRET, max_workers=1)
    plain = np.frombuffer(b"".join(f.tobytes() for f in filters), np.uint8).reshape(len(rows), -1)
    # pace-default salts each record with its year of birth: clkhash's filter, its bits in
    # the order the salt's keyed permutation gives (the plain reference of encoder.hardening).
    salt = schema.hardening.record_salt
    assert salt is not None and salt.feature == "date_of_birth"
    salts = [standardise_date(row[HEADER.index("date_of_birth")])[:4] for row in rows]
    distinct = sorted(set(salts))
    salt_key = hardening_key(Secret(TEST_SECRET), "record salt")
    perms = np.stack([
        keyed_permutation(hmac.digest(salt_key, s.encode(), "sha256"), schema.bit_length)
        for s in distinct
    ])  # fmt: skip
    groups = np.array([distinct.index(s) for s in salts], dtype=np.int32)
    return permute_reference(plain, groups, perms, balanced=False)


def test_csv_end_to_end(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "clients.csv", ROWS)
    report = _encode(tmp_path, src)
    assert report.records_in == 8
    assert report.excluded_no_consent == 1
    assert report.rejected == 3
    assert report.encoded == 4
    assert report.reconciles()
    assert report.rejected_by_field == {"date_of_birth": 2, "sex": 1}
    # C008's bad postcode (pace-default: onInvalid missing) is not "treated as missing": the
    # record is rejected for its sex code, so nothing of it is encoded.
    assert report.invalid_treated_as_missing == {}
    enc = read_encodings(tmp_path / "out.plk")
    assert enc.header["input_summary"] == {"records_in": 8, "excluded_no_consent": 1,
                                           "rejected": 3}  # fmt: skip
    assert len(enc) == 4
    assert enc.header["key_check_value"] == key_check_value(Secret(TEST_SECRET))
    assert enc.header["schema_fingerprint"] == load_schema("pace-default").fingerprint
    keys = pd.read_csv(tmp_path / "out.keys.csv", dtype=str)
    assert keys.to_dict("list") == {"row": ["0", "1", "2", "3"],
                                    "local_id": ["C001", "C002", "C005", "C006"]}  # fmt: skip
    encoded_rows = [ROWS[i] for i in (0, 1, 4, 5)]
    assert np.array_equal(enc.bits, _reference_bits(encoded_rows))
    rejects = pd.read_csv(tmp_path / "out.rejects.csv", dtype=str)
    assert list(rejects.columns) == ["input_row", "field", "action", "reason"]
    # Spreadsheet rows: the header is row 1, so data rows 4, 7, 8 are rows 5, 8, 9.
    assert rejects["input_row"].tolist() == ["5", "8", "9"]
    assert set(rejects["field"]) == {"date_of_birth", "sex"}
    assert set(rejects["action"]) == {"rejected"}
    text = (tmp_path / "out.rejects.csv").read_text() + json.dumps(report.rejected_reasons)
    for value in ("31/02/1985", "15/13/1990", "not a postcode", "Bob", "McDonald", "C004"):
        assert value not in text  # reasons never quote values
    coverage = {f["name"]: f["present"] for f in enc.header["features"]}
    assert coverage["given_name"] == 3 and coverage["surname"] == 4
    assert coverage["address_line"] == 0  # optional column absent


def test_delimiters_encodings_and_formats_give_identical_bits(tmp_path: Path) -> None:
    base = _encode(tmp_path, _write_csv(tmp_path / "a.csv", ROWS), "base")
    reference = np.asarray(read_encodings(base.output).bits)
    variants: list[Path] = [
        _write_csv(tmp_path / "semi.csv", ROWS, ";"),
        _write_csv(tmp_path / "tab.tsv", ROWS, "\t"),
        _write_csv(tmp_path / "pipe.txt", ROWS, "|"),
        _write_csv(tmp_path / "bom.csv", ROWS, encoding="utf-8-sig"),
    ]
    # Windows-1252 cannot hold Ł: replace it in that variant and its reference.
    cp_rows = [[v.replace("Ł", "L") for v in r] for r in ROWS]
    cp_file = _write_csv(tmp_path / "cp.csv", cp_rows, encoding="cp1252")
    frame = pd.DataFrame(ROWS, columns=HEADER)
    frame.to_excel(tmp_path / "x.xlsx", index=False)
    frame.to_parquet(tmp_path / "p.parquet", index=False)
    variants += [tmp_path / "x.xlsx", tmp_path / "p.parquet"]
    for i, src in enumerate(variants):
        report = _encode(tmp_path, src, f"v{i}")
        assert report.encoded == 4, src.name
        assert np.array_equal(read_encodings(report.output).bits, reference), src.name
    cp_report = _encode(tmp_path, cp_file, "cp")
    cp_ref = _encode(tmp_path, _write_csv(tmp_path / "cpu.csv", cp_rows), "cpu")
    assert np.array_equal(read_encodings(cp_report.output).bits,
                          read_encodings(cp_ref.output).bits)  # fmt: skip


def test_excel_dates_and_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"client_ref": [101, 102], "given_name": ["Ann", "Bo"], "surname": ["Lee", "Ng"],
         "date_of_birth": pd.to_datetime(["1985-03-12", "1979-04-03"]), "sex": [1, 2],
         "postcode": ["EH1 1AA", "G2 4JR"], "consent": ["Y", "Y"]})  # fmt: skip
    frame.to_excel(tmp_path / "d.xlsx", index=False)
    report = _encode(tmp_path, tmp_path / "d.xlsx")
    assert report.encoded == 2, report.rejected_reasons
    assert _key_map(tmp_path / "out.keys.csv") == [("0", "101"), ("1", "102")]


def test_parallel_equals_serial(tmp_path: Path) -> None:
    rows = [[f"R{i}-{j}", *r[1:]] for i in range(300) for j, r in enumerate(ROWS)]
    src = _write_csv(tmp_path / "big.csv", rows)
    serial = _encode(tmp_path, src, "serial", workers=1, chunk_rows=1000)
    parallel = _encode(tmp_path, src, "parallel", workers=2, chunk_rows=1000)
    assert serial.encoded == parallel.encoded == 1200
    assert np.array_equal(read_encodings(serial.output).bits, read_encodings(parallel.output).bits)
    for suffix in (".keys.csv", ".rejects.csv"):
        assert (tmp_path / f"serial{suffix}").read_text() == (
            tmp_path / f"parallel{suffix}"
        ).read_text()
    assert parallel.rejected_by_field == {"date_of_birth": 600, "sex": 300}
    assert parallel.invalid_treated_as_missing == {}  # only in rejected records


def test_invalid_as_missing(tmp_path: Path) -> None:
    doc = json.loads(Path("schemas/pace-default.json").read_text())
    for feature in doc["features"]:
        feature["onInvalid"] = "missing"
    schema = parse_schema(doc)
    src = _write_csv(tmp_path / "c.csv", ROWS)
    options = EncodeOptions(id_column="client_ref", consent_column="consent")
    report = encode_file(src, schema, Secret(TEST_SECRET), tmp_path / "m.plk", options)
    assert report.rejected == 0 and report.encoded == 7
    assert report.invalid_treated_as_missing == {"date_of_birth": 2, "postcode": 1, "sex": 1}
    # Each is a line of the rejects file, so the rows can be found and fixed.
    rejects = pd.read_csv(tmp_path / "m.rejects.csv", dtype=str)
    assert set(rejects["action"]) == {"treated as missing"}
    assert rejects.groupby("field").size().to_dict() == report.invalid_treated_as_missing
    assert rejects["input_row"].tolist() == ["5", "8", "9", "9"]


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (b"", {}, r"empty\.csv: the file is empty"),
        (b"client_ref,given_name,surname,date_of_birth,sex,consent\nC1,A,B,1980-01-01,M,Y\n",
         {}, r"column\(s\) not found: 'postcode' \(feature postcode\)"),
        (b"client_ref,given_name,surname,date_of_birth,sex,postcode,consent\n"
         b"C1,A,B,1980-01-01,M,EH1 1AA\n", {}, r"row 2: 6 fields where the header has 7"),
        (b"client_ref,given_name,surname,date_of_birth,sex,postcode,consent\n"
         b"C1,A,B,1980-01-01,M,EH1 1AA,Y\nC2,\xff\xfe,B,1980-01-01,M,EH1 1AA,Y\n",
         {"encoding": "utf-8"}, r"line 3: bytes that are not valid utf-8"),
        (b"client_ref,given_name,surname,date_of_birth,sex,postcode\n"
         b"C1,A,B,1980-01-01,M,EH1 1AA\n", {}, r"--consent-column 'consent' not found"),
        (b"client_ref,given_name,surname,date_of_birth,sex,postcode,consent\n"
         b"C1,Ann,Lee,1980-01-01,F,EH1 1AA,Y\nC2,Bo,Ng,1981-01-01,M,G2 4JR,Y\n"
         b"C1,Cy,Li,1982-01-01,M,G2 4JR,Y\n", {},
         r"local IDs must be unique \(column 'client_ref'\), but 1 ID appears more than once "
         r"\(2 rows in all\): rows 2, 4\."),
        (b"client_ref,client_ref,x\n1,2,3\n", {}, r"row 1: header columns 1 and 2 have the same"),
    ],
)  # fmt: skip
def test_bad_files_get_named_errors_and_leave_nothing(
    tmp_path: Path, content: bytes, kwargs: dict[str, Any], message: str
) -> None:
    src = tmp_path / "empty.csv" if not content else tmp_path / "in.csv"
    src.write_bytes(content)
    out = tmp_path / "out" / "x.plk"
    out.parent.mkdir()
    options = EncodeOptions(id_column="client_ref", consent_column="consent")
    with pytest.raises((InputError, EncodeError), match=message) as info:
        encode_file(src, load_schema("pace-default"), Secret(TEST_SECRET), out, options,
                    encoding=kwargs.get("encoding", "auto"))  # fmt: skip
    assert str(src) in str(info.value) or "consent" in str(info.value)
    assert list(out.parent.iterdir()) == []  # no half-written outputs


def test_wrong_delimiter_forced(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "semi.csv", ROWS, ";")
    with pytest.raises(EncodeError, match=r"semi\.csv: column\(s\) not found"):
        encode_file(src, load_schema("pace-default"), Secret(TEST_SECRET), tmp_path / "o.plk",
                    EncodeOptions(id_column="client_ref"), delimiter=",")  # fmt: skip


def test_header_only_and_missing_ids(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "h.csv", [])
    report = _encode(tmp_path, src)
    assert report.records_in == 0 and len(read_encodings(report.output)) == 0
    rows = [r[:] for r in ROWS[:2]]
    rows[1][0] = "  "
    report = _encode(tmp_path, _write_csv(tmp_path / "i.csv", rows), "ids")
    assert report.rejected == 1 and report.rejected_by_field == {"client_ref": 1}


def test_column_mapping_and_row_number_ids(tmp_path: Path) -> None:
    header = ["Ref", "Forename", "Family Name", "DOB", "Gender", "Post Code", "OK"]
    src = _write_csv(tmp_path / "m.csv", ROWS, header=header)
    mapping = {"given_name": "Forename", "surname": "Family Name", "date_of_birth": "DOB",
               "sex": "Gender", "postcode": "Post Code"}  # fmt: skip
    report = encode_file(
        src,
        load_schema("pace-default"),
        Secret(TEST_SECRET),
        tmp_path / "m.plk",
        EncodeOptions(columns=mapping, consent_column="OK"),
    )
    assert report.encoded == 4
    # data-row numbers stand in for IDs
    assert _key_map(tmp_path / "m.keys.csv") == [("0", "1"), ("1", "2"), ("2", "5"), ("3", "6")]
    with pytest.raises(EncodeError, match="features not in the schema: nickname"):
        encode_file(src, load_schema("pace-default"), Secret(TEST_SECRET), tmp_path / "n.plk",
                    EncodeOptions(columns={"nickname": "Forename"}))  # fmt: skip


def test_encode_dataframe_matches_file(tmp_path: Path) -> None:
    base = _encode(tmp_path, _write_csv(tmp_path / "a.csv", ROWS))
    enc = _encode_rows(ROWS)
    from_file = read_encodings(base.output)
    assert np.array_equal(enc.bits, from_file.bits)
    assert enc.report is not None and enc.report.reconciles() and enc.report.encoded == 4
    assert enc.plk_header.key_check_value == base.key_check_value
    # The header in memory is the one the file holds, but for the time it was made.
    assert enc.plk_header.model_dump(exclude={"created_at"}) == from_file.plk_header.model_dump(
        exclude={"created_at"}
    )


def test_worker_threads_get_keys_not_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys are derived once per run; the thread pool's initializer never sees the secret."""
    seen: list[tuple[Any, ...]] = []
    real_pool = encode_module.cf.ThreadPoolExecutor

    def pool(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["initargs"])
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(encode_module.cf, "ThreadPoolExecutor", pool)
    rows = ROWS * 50
    rows = [[f"C{k:04d}", *row[1:]] for k, row in enumerate(rows)]
    _encode(tmp_path, _write_csv(tmp_path / "w.csv", rows), workers=2, chunk_rows=100)
    assert seen and not any(isinstance(arg, Secret) for args in seen for arg in args)
    keys = next(arg for arg in seen[0] if isinstance(arg, EncodingKeys))
    assert TEST_SECRET not in repr(keys) and "redacted" in repr(keys)


def test_output_paths() -> None:
    assert output_paths(Path("d/sds.plk")) == (Path("d/sds.keys.csv"), Path("d/sds.rejects.csv"))


def test_rows_without_consent_are_never_looked_at(tmp_path: Path) -> None:
    rows = [
        ["C1", "Ann", "Lee", "31/02/1985", "Q", "not a postcode", "N"],  # invalid, no consent
        ["C2", "Bo", "Ng", "01/02/1985", "M", "G2 4JR", "Y"],
        ["C3", "Cy", "Li", "30/02/1985", "M", "G2 4JR", ""],  # invalid, blank consent
    ]
    report = _encode(tmp_path, _write_csv(tmp_path / "c.csv", rows))
    assert (report.excluded_no_consent, report.rejected, report.encoded) == (2, 0, 1)
    assert report.invalid_treated_as_missing == {}
    assert (tmp_path / "out.rejects.csv").read_text().splitlines() == [
        "input_row,field,action,reason"
    ]
    assert _key_map(tmp_path / "out.keys.csv") == [("0", "C2")]


# --------------------------------------------------------------------------- run-level checks


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("%Q", r"--date-format '%Q': unknown directive %Q"),
        ("%d/%m/%Q", r"unknown directive %Q"),
        ("dd/mm/yyyy", r"--date-format 'dd/mm/yyyy': no strptime directive"),
        ("%%", r"no strptime directive"),
        ("%d/%m/%", r"ends with a lone '%'"),
    ],
)
def test_invalid_date_formats_are_refused_up_front(fmt: str, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        EncodeOptions(date_format=fmt)


def test_valid_date_formats_are_accepted(tmp_path: Path) -> None:
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d %b %Y", "%Y%m%d", "%d.%m.%y", "%Y-%m-%dT%H:%M:%S%:z"):
        EncodeOptions(date_format=fmt)
    rows = [["C1", "Ann", "Lee", "12/03/1985", "F", "EH1 1AA", "Y"]]
    report = _encode(tmp_path, _write_csv(tmp_path / "d.csv", rows), date_format="%d/%m/%Y")
    assert report.encoded == 1


def _swapped(n: int) -> list[list[str]]:
    """Date of birth and postcode swapped, as in the issue: nearly every record rejected."""
    rows = []
    for i in range(n):
        dob, postcode = f"{1 + i % 28:02d}/03/1985", "EH1 1AA"
        rows.append([f"K{i:04d}", "Ann", "Lee", postcode, "F", dob, "Y"])
    rows[0][3:6] = ["12/03/1985", "F", "EH1 1AA"]  # one record in the right order
    return rows


def test_too_many_rejections_fail_and_leave_nothing(tmp_path: Path) -> None:
    rows = [*_swapped(40), ["N1", "Bo", "Ng", "x", "M", "y", "N"]]
    src = _write_csv(tmp_path / "swap.csv", rows)
    out = tmp_path / "out"
    message = _refusal(out, src, "s")
    assert "39 of 40 records with consent were rejected (98%), more than --max-reject-rate " in (
        message
    )
    assert "Rejections by field: date_of_birth 39" in message
    assert "swapped or wrongly mapped columns" in message and "--max-reject-rate" in message
    for value in ("EH1 1AA", "K0001", "03/1985"):
        assert value not in message
    assert list(out.iterdir()) == []  # no .plk, key map, rejects or temporary files
    report = _encode(out, src, "s", max_reject_rate=1.0)
    assert (report.encoded, report.rejected, report.excluded_no_consent) == (1, 39, 1)
    summary = read_encodings(out / "s.plk").header["input_summary"]
    assert summary == {"records_in": 41, "excluded_no_consent": 1, "rejected": 39}


def test_reject_rate_limit_is_inclusive_and_validated(tmp_path: Path) -> None:
    rows = [["C1", "Ann", "Lee", "12/03/1985", "F", "EH1 1AA", "Y"],
            ["C2", "Bo", "Ng", "31/02/1985", "M", "G2 4JR", "Y"]]  # fmt: skip
    report = _encode(tmp_path, _write_csv(tmp_path / "half.csv", rows))  # 50%: allowed
    assert report.rejected == 1
    with pytest.raises(EncodeError, match=r"more than --max-reject-rate 0\.4 allows"):
        _encode(tmp_path, tmp_path / "half.csv", "again", max_reject_rate=0.4)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(EncodeError, match=r"--max-reject-rate .*: expected a fraction"):
            EncodeOptions(max_reject_rate=bad)


def test_in_memory_encodings_carry_the_input_summary_and_reject_limit() -> None:
    enc = _encode_rows(ROWS)
    assert enc.header["input_summary"] == {"records_in": 8, "excluded_no_consent": 1,
                                           "rejected": 3}  # fmt: skip
    swapped = pd.DataFrame(_swapped(10), columns=HEADER)
    with pytest.raises(EncodeError, match="DataFrame: 9 of 10 records with consent"):
        encode_dataframe(swapped, load_schema("pace-default"), Secret(TEST_SECRET),
                         EncodeOptions(id_column="client_ref"))  # fmt: skip


def test_all_duplicate_ids_are_listed_before_any_encoding(tmp_path: Path) -> None:
    rows = [[f"ID{i % 7 if i < 21 else i:04d}", "Ann", "Lee", "31/02/1985", "F", "EH1 1AA", "Y"]
            for i in range(30)]  # fmt: skip
    rows.append(["ID9999", "Bo", "Ng", "01/01/1980", "M", "G2 4JR", "N"])
    rows.append(["ID9999", "Cy", "Li", "01/01/1980", "M", "G2 4JR", "no"])  # no consent: ignored
    out = tmp_path / "out"
    # Every record has an impossible date too: the duplicate check comes first, before any
    # record is encoded (or the reject rate could be counted).
    message = _refusal(out, _write_csv(tmp_path / "dupes.csv", rows), "d")
    assert "local IDs must be unique (column 'client_ref'), but 7 IDs appear more than once " in (
        message
    )
    assert "(21 rows in all): rows 2, 9, 16; rows 3, 10, 17; rows 4, 11, 18; rows 5, 12, 19; " in (
        message
    )
    assert message.endswith("rows 6, 13, 20; and 2 more IDs. Nothing was encoded")
    assert "ID000" not in message and "ID9999" not in message
    assert list(out.iterdir()) == []


def test_duplicate_ids_in_a_dataframe_and_after_skipped_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame([ROWS[0], ROWS[1], ROWS[0]], columns=HEADER)
    with pytest.raises(EncodeError, match=r"DataFrame: .* \(2 rows in all\): rows 2, 4\."):
        encode_dataframe(frame, load_schema("pace-default"), Secret(TEST_SECRET),
                         EncodeOptions(id_column="client_ref"))  # fmt: skip
    body = _write_csv(tmp_path / "b.csv", [ROWS[0], ROWS[1], ROWS[0]]).read_text()
    (tmp_path / "t.csv").write_text("Title\n\n" + body)
    with pytest.raises(EncodeError, match=r"rows 4, 6\. Nothing was encoded"):  # header: row 3
        encode_file(
            tmp_path / "t.csv",
            load_schema("pace-default"),
            Secret(TEST_SECRET),
            tmp_path / "t.plk",
            EncodeOptions(id_column="client_ref"),
            skip_rows=2,
        )


def test_existing_outputs_are_refused_without_overwrite(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "c.csv", ROWS)
    schema, secret = load_schema("pace-default"), Secret(TEST_SECRET)
    options = EncodeOptions(id_column="client_ref", consent_column="consent")
    out = tmp_path / "m.plk"
    encode_file(src, schema, secret, out, options, overwrite=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for existing in (out, tmp_path / "m.keys.csv", tmp_path / "m.rejects.csv"):
        others = [p for p in (out, tmp_path / "m.keys.csv", tmp_path / "m.rejects.csv")
                  if p != existing]  # fmt: skip
        saved = {p: p.read_bytes() for p in others}
        for p in others:
            p.unlink()
        with pytest.raises(EncodeError, match=rf"{existing.name} already exists; refusing"):
            encode_file(src, schema, secret, out, options, overwrite=False)
        for p, data in saved.items():
            p.write_bytes(data)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    encode_file(src, schema, secret, out, options, overwrite=True)


def test_formula_like_ids_round_trip_through_the_key_map(tmp_path: Path) -> None:
    from encoder.keymap import read_key_map

    ids = ['=HYPERLINK("x")', "+44 131 496 0000", "@SUM(A1)", "-12", "'C5", "C6"]
    rows = [[local, *ROWS[0][1:]] for local in ids]
    src = _write_csv(tmp_path / "f.csv", rows)
    _encode(tmp_path, src)
    text = (tmp_path / "out.keys.csv").read_text(encoding="utf-8")
    cells = [line.split(",", 1)[1] for line in text.splitlines()[1:]]
    assert not any(c.lstrip('"').startswith(("=", "+", "@")) for c in cells)
    assert '"-12"' in cells  # a plain number is left as it is (Arrow quotes every string)
    assert read_key_map(tmp_path / "out.keys.csv") == ids


def test_rejects_file_text_cells_are_spreadsheet_safe(tmp_path: Path) -> None:
    header = ["@ref", *HEADER[1:]]
    rows = [["", *ROWS[0][1:]], ROWS[1], ROWS[4]]
    src = _write_csv(tmp_path / "r.csv", rows, header=header)
    report = encode_file(src, load_schema("pace-default"), Secret(TEST_SECRET),
                         tmp_path / "r.plk", EncodeOptions(id_column="@ref"))  # fmt: skip
    assert report.rejected_by_field == {"@ref": 1}
    lines = (tmp_path / "r.rejects.csv").read_text().splitlines()
    assert lines[1] == "2,'@ref,rejected,local ID is empty"


def test_treated_as_missing_rows_are_listed_and_counts_reconcile(tmp_path: Path) -> None:
    rows = [
        ["C1", "Ann", "Lee", "12/03/1985", "F", "not a postcode", "Y"],  # encoded, postcode missing
        ["C2", "Bo", "Ng", "31/02/1985", "M", "nor this", "Y"],  # rejected: date (not listed twice)
        ["C3", "Cy", "Li", "01/01/1980", "M", "G2 4JR", "Y"],
    ]
    report = _encode(tmp_path, _write_csv(tmp_path / "p.csv", rows))
    assert (report.encoded, report.rejected) == (2, 1) and report.reconciles()
    assert report.invalid_treated_as_missing == {"postcode": 1}
    rejects = pd.read_csv(tmp_path / "out.rejects.csv", dtype=str)
    assert rejects.values.tolist() == [
        ["2", "postcode", "treated as missing", "not a valid UK postcode"],
        ["3", "date_of_birth", "rejected", "day out of range for month"],
    ]
    assert (rejects["action"] == "rejected").sum() == report.rejected
