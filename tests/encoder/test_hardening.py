"""Hardening of encodings: the schema key, balanced filters, record salts, BLIP and decoys."""

from __future__ import annotations

import copy
import csv
import hmac
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clkhash import clk
from clkhash import schema as clk_schema
from typer.testing import CliRunner

from encoder.cli import app
from encoder.encode import EncodeOptions, encode_dataframe, encode_file
from encoder.fileformat import read_encodings
from encoder.hardening import (
    Hardener,
    HardeningKeys,
    blip_reference,
    keyed_permutation,
    permute_reference,
)
from encoder.keymap import DECOY_LOCAL_ID, read_key_map, read_local_ids
from encoder.keys import RecordKey, Secret, hardening_key
from encoder.schema import SchemaInvalid, load_schema, parse_schema
from tests.conftest import TEST_SECRET, schema_doc

runner = CliRunner()
SECRET = Secret(TEST_SECRET)
OTHER_SECRET = Secret("f" * 64)
SALT = {"feature": "date_of_birth", "start": 0, "end": 4}
ALL = {"balanced": True, "recordSalt": SALT, "blip": 0.02, "decoys": 0.05}
GIVEN = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon", "kim", "lou"]
SURNAMES = ["smith", "jones", "brown", "black", "white", "green", "young", "king", "scott"]
POSTCODES = ["EH1 1AA", "G1 1AA", "DD1 4HN", "AB10 1AQ", "KY16 9AJ", "IV2 3PU"]


def _schema(hardening: dict[str, Any] | None, base: str = "pace-default") -> Any:
    doc = copy.deepcopy(load_schema(base).raw)
    doc.pop("hardening", None)  # the bundled default is hardened: start from the plain one
    if hardening is not None:
        doc["hardening"] = hardening
    return parse_schema(doc, "hardened.json")


def _people(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    years = rng.integers(1950, 2000, n)
    return pd.DataFrame({
        "local_id": [f"L{i:05d}" for i in range(n)],
        "given_name": rng.choice(GIVEN, n),
        "surname": rng.choice(SURNAMES, n),
        "date_of_birth": [f"{y}-{m:02d}-{d:02d}" for y, m, d in
                          zip(years, rng.integers(1, 13, n), rng.integers(1, 29, n),
                              strict=True)],
        "sex": rng.choice(["m", "f"], n),
        "postcode": rng.choice(POSTCODES, n),
    })  # fmt: skip


def _encode(frame: pd.DataFrame, schema: Any, secret: Secret = SECRET, **options: Any) -> Any:
    return encode_dataframe(frame, schema, secret, EncodeOptions(id_column="local_id", **options))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    both = int(np.bitwise_count(a & b).sum())
    return 2 * both / int(np.bitwise_count(a).sum() + np.bitwise_count(b).sum())


# --------------------------------------------------------------------------- the schema key


@pytest.mark.parametrize(
    ("hardening", "path", "message"),
    [
        ({"blip": 0.5}, "$.hardening.blip", "must be in [0, 0.5)"),
        ({"blip": -0.1}, "$.hardening.blip", "must be in [0, 0.5)"),
        ({"blip": "0.1"}, "$.hardening.blip", "valid number"),
        ({"decoys": 1.5}, "$.hardening.decoys", "must be in [0, 1]"),
        ({"balanced": "yes"}, "$.hardening.balanced", "valid boolean"),
        ({"balance": True}, "$.hardening.balance", "Extra inputs are not permitted"),
        ({"recordSalt": {"start": 0}}, "$.hardening.recordSalt.feature", "Field required"),
        ({"recordSalt": {"feature": "nickname"}}, "$.hardening.recordSalt.feature",
         "'nickname' is not a feature of this schema"),
        ({"recordSalt": {"feature": "names_any_order"}}, "$.hardening.recordSalt.feature",
         "'names_any_order' is derived"),
        ({"recordSalt": {"feature": "date_of_birth", "start": 4, "end": 4}},
         "$.hardening.recordSalt", "end must be greater than start"),
        ({"recordSalt": {"feature": "date_of_birth", "start": -1}},
         "$.hardening.recordSalt.start", "greater than or equal to 0"),
        ([True], "$.hardening", "must be an object"),
    ],
)  # fmt: skip
def test_invalid_hardening_names_the_json_path(hardening: Any, path: str, message: str) -> None:
    with pytest.raises(SchemaInvalid) as info:
        _schema(hardening)
    assert str(info.value).startswith(f"hardened.json: {path}: "), info.value
    assert message in str(info.value)


def test_an_ignored_feature_cannot_salt() -> None:
    doc = schema_doc([{"identifier": "name", "format": {"type": "string"},
                       "hashing": {"comparison": {"type": "ngram", "n": 2},
                                   "strategy": {"bitsPerToken": 10}}}])  # fmt: skip
    doc["hardening"] = {"recordSalt": {"feature": "rec_id"}}
    with pytest.raises(SchemaInvalid, match=r"\$\.hardening\.recordSalt\.feature: 'rec_id' is "):
        parse_schema(doc)


def test_clkhash_accepts_the_key_and_the_fingerprint_covers_it() -> None:
    plain = _schema(None)
    doc = copy.deepcopy(plain.raw) | {"hardening": ALL}
    clk_schema.validate_schema_dict(doc)
    clk_schema.from_json_dict(copy.deepcopy(doc))  # clkhash ignores it
    schema = parse_schema(doc)
    assert schema.raw["hardening"] == ALL
    assert schema.fingerprint != plain.fingerprint
    assert schema.hardening.balanced and schema.hardening.blip == 0.02
    assert schema.hardening.record_salt is not None
    assert schema.hardening.record_salt.feature == "date_of_birth"
    assert (schema.filter_length, schema.bit_length, schema.hash_length) == (1024, 2048, 1024)
    assert not plain.hardening.active and plain.bit_length == plain.filter_length == 1024


@pytest.mark.parametrize("version", [1, 2])
def test_older_schemas_keep_their_hardening(version: int) -> None:
    feature: dict[str, Any] = {"identifier": "n", "format": {"type": "string", "encoding": "utf-8"}}
    if version == 1:
        doc = {"version": 1, "clkConfig": {"l": 1024, "k": 20, "hash": {"type": "doubleHash"},
                                           "kdf": {"type": "HKDF"}},
               "features": [feature | {"hashing": {"ngram": 2}}]}  # fmt: skip
    else:
        hashing = {"ngram": 2, "strategy": {"k": 10}}
        doc = {"version": 2, "clkConfig": {"l": 1024, "kdf": {"type": "HKDF"}},
               "features": [feature | {"hashing": hashing}]}  # fmt: skip
    schema = parse_schema(doc | {"hardening": {"balanced": True}})
    assert schema.hardening.balanced and schema.raw["hardening"] == {"balanced": True}
    assert schema.bit_length == 2048


@pytest.mark.parametrize("hardening", [None, {}, {"blip": 0, "decoys": 0, "balanced": False}])
def test_without_hardening_the_bits_are_clkhash_s(hardening: dict[str, Any] | None) -> None:
    """Canonical input, no standardisers: exactly clkhash's bits, with the key absent or off."""
    features = [
        {"identifier": name, "format": {"type": "string", "encoding": "utf-8"},
         "hashing": {"comparison": {"type": "ngram", "n": 2}, "strategy": {"bitsPerToken": 20}}}
        for name in ("given", "surname", "postcode")
    ]  # fmt: skip
    doc = schema_doc(features)
    if hardening is not None:
        doc["hardening"] = hardening
    schema = parse_schema(doc)
    frame = _people(300)[["local_id", "given_name", "surname", "postcode"]]
    frame.columns = ["rec_id", "given", "surname", "postcode"]
    enc = encode_dataframe(frame, schema, SECRET, EncodeOptions(id_column="rec_id", chunk_rows=128))
    filters = clk.generate_clks(frame.values.tolist(), schema.clk, TEST_SECRET, max_workers=1)
    expected = np.frombuffer(b"".join(f.tobytes() for f in filters), np.uint8).reshape(300, -1)
    assert np.array_equal(enc.bits, expected)
    assert enc.report.decoys == 0 and enc.local_ids == frame["rec_id"].tolist()


# --------------------------------------------------------------------------- balanced


def test_balanced_filters_have_half_their_bits_set_and_keep_the_order_of_scores() -> None:
    frame = _people(400)
    twin = frame.iloc[[0]].assign(local_id="twin", surname=frame.surname[0] + "e")
    frame = pd.concat([frame, twin], ignore_index=True)
    plain = _encode(frame, _schema(None)).bits
    schema = _schema({"balanced": True})
    bits = _encode(frame, schema).bits
    assert bits.shape == (401, 256) and schema.bit_length == 2048
    assert (np.bitwise_count(bits).sum(axis=1) == 1024).all()
    near = _dice(bits[0], bits[400])
    unrelated = np.mean([_dice(bits[0], bits[k]) for k in range(1, 400)])
    assert near > unrelated + 0.1 and near > 0.8
    # The reference: the filter and its complement, in the secret's own order.
    perm = keyed_permutation(hardening_key(SECRET, "balanced"), 2048)
    groups = np.zeros(len(frame), dtype=np.int32)
    assert np.array_equal(bits, permute_reference(plain, groups, perm[None, :], balanced=True))
    assert np.array_equal(_encode(frame, schema).bits, bits)  # same secret, same output


def test_another_secret_permutes_otherwise() -> None:
    frame = _people(50)
    schema = _schema({"balanced": True})
    plain_other = _encode(frame, _schema(None), OTHER_SECRET).bits
    bits_other = _encode(frame, schema, OTHER_SECRET).bits
    mine = keyed_permutation(hardening_key(SECRET, "balanced"), 2048)
    theirs = keyed_permutation(hardening_key(OTHER_SECRET, "balanced"), 2048)
    assert not np.array_equal(mine, theirs)
    groups = np.zeros(50, dtype=np.int32)
    assert np.array_equal(bits_other, permute_reference(plain_other, groups, theirs[None, :], True))
    assert not np.array_equal(
        bits_other, permute_reference(plain_other, groups, mine[None, :], True)
    )


def test_keyed_permutation_is_a_permutation_fixed_by_its_key() -> None:
    perm = keyed_permutation(b"k" * 32, 1000)
    assert sorted(perm.tolist()) == list(range(1000))
    assert np.array_equal(perm, keyed_permutation(b"k" * 32, 1000))
    assert not np.array_equal(perm, keyed_permutation(b"j" * 32, 1000))


# --------------------------------------------------------------------------- record salts


def test_records_with_the_same_salt_compare_as_before_others_not_at_all() -> None:
    frame = _people(120)
    moved = frame.assign(
        local_id=frame.local_id + "y",
        date_of_birth=[str(int(d[:4]) + 1) + d[4:] for d in frame.date_of_birth],
    )
    same = frame.assign(local_id=frame.local_id + "s")
    both = pd.concat([frame, moved, same], ignore_index=True)
    plain = _encode(both, _schema(None)).bits
    salted = _encode(both, _schema({"recordSalt": SALT})).bits
    n = len(frame)
    assert np.array_equal(salted[:n], salted[2 * n :])  # same salt, same values: same bits
    before = np.mean([_dice(plain[k], plain[n + k]) for k in range(n)])
    after = np.mean([_dice(salted[k], salted[n + k]) for k in range(n)])
    weights = np.bitwise_count(plain).sum(axis=1).astype(float)
    w1, w2 = weights[:n], weights[n : 2 * n]
    baseline = float(np.mean(2 * w1 * w2 / (1024 * (w1 + w2))))  # two random filters
    assert before > 0.8
    assert abs(after - baseline) < 0.05, (after, baseline)
    # Same salt, a near-duplicate: as similar as without salting.
    assert _dice(salted[0], salted[2 * n]) == _dice(plain[0], plain[2 * n]) == 1.0


@pytest.mark.parametrize("balanced", [False, True])
def test_salted_bits_match_a_plain_numpy_reference(balanced: bool) -> None:
    frame = _people(300)
    frame.loc[7, "date_of_birth"] = ""  # a missing value: the empty salt
    plain = _encode(frame, _schema(None)).bits
    hardening = {"recordSalt": SALT, "balanced": balanced}
    bits = _encode(frame, _schema(hardening), chunk_rows=128).bits
    length = 2048 if balanced else 1024
    salts = [d[:4] for d in frame.date_of_birth]
    distinct = sorted(set(salts))
    salt_key = hardening_key(SECRET, "record salt")
    perms = np.stack([
        keyed_permutation(hmac.digest(salt_key, s.encode(), "sha256"), length) for s in distinct
    ])  # fmt: skip
    if balanced:
        perms = keyed_permutation(hardening_key(SECRET, "balanced"), length)[perms]
    groups = np.array([distinct.index(s) for s in salts], dtype=np.int32)
    assert "" in distinct
    assert np.array_equal(bits, permute_reference(plain, groups, perms, balanced))


# --------------------------------------------------------------------------- BLIP


def test_blip_flips_bits_at_its_rate_deterministically() -> None:
    frame = _people(2000)
    plain = _encode(frame, _schema(None)).bits
    schema = _schema({"blip": 0.05})
    bits = _encode(frame, schema).bits
    flips = int(np.bitwise_count(plain ^ bits).sum())
    trials = plain.size * 8
    sd = (trials * 0.05 * 0.95) ** 0.5
    assert abs(flips - 0.05 * trials) < 5 * sd, flips / trials
    per_row = np.bitwise_count(plain ^ bits).sum(axis=1)
    assert per_row.min() < per_row.mean() < per_row.max()  # the count varies by record
    assert np.array_equal(_encode(frame, schema, chunk_rows=333).bits, bits)


@pytest.mark.parametrize("rate", [0.001, 0.05, 0.3])
def test_blip_matches_a_plain_numpy_reference(rate: float) -> None:
    schema = _schema({"blip": rate, "balanced": True})
    plain = _encode(_people(300), _schema(None)).bits
    bits = _encode(_people(300), schema).bits
    balanced = _encode(_people(300), _schema({"balanced": True})).bits
    key = hardening_key(SECRET, "blip")
    assert np.array_equal(bits, blip_reference(balanced, key, rate))
    assert not np.array_equal(bits, blip_reference(balanced, hardening_key(OTHER_SECRET, "blip"),
                                                   rate))  # fmt: skip
    assert plain.shape[1] * 2 == bits.shape[1]


def test_blip_draws_more_when_a_row_needs_them() -> None:
    """Rows whose first draws end before the row does read on: the same flips."""
    schema = _schema({"blip": 0.05})
    bits = _encode(_people(200), _schema(None)).bits
    usual = bits.copy()
    keys = HardeningKeys.derive(schema, SECRET)
    Hardener(schema, keys, None).blip(usual)
    few = Hardener(schema, keys, None)
    few._draws = 3  # forces the slow path on every row
    scarce = bits.copy()
    few.blip(scarce)
    assert np.array_equal(usual, scarce) and not np.array_equal(usual, bits)
    assert np.array_equal(usual, blip_reference(bits, hardening_key(SECRET, "blip"), 0.05))


def test_blip_is_the_same_for_any_chunk_size_and_worker_count(tmp_path: Path) -> None:
    frame = _people(1500)
    src = tmp_path / "people.csv"
    frame.to_csv(src, index=False)
    schema = _schema({"blip": 0.02, "balanced": True, "recordSalt": SALT})
    files = []
    for k, (rows, workers) in enumerate([(1000, 1), (200, 2), (50_000, 2)]):
        out = tmp_path / f"run{k}.plk"
        options = EncodeOptions(id_column="local_id", chunk_rows=rows, workers=workers)
        encode_file(src, schema, SECRET, out, options)
        files.append(out.read_bytes()[-len(frame) * 256 :])
    assert files[0] == files[1] == files[2]


# --------------------------------------------------------------------------- decoys


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_decoys_per_chunk_at_random_rows_with_an_empty_local_id(tmp_path: Path) -> None:
    frame = _people(1500)
    schema = _schema({"decoys": 0.05})
    out = tmp_path / "p.plk"
    report = encode_file(_write(frame, tmp_path / "p.csv"), schema, SECRET, out,
                         EncodeOptions(id_column="local_id", chunk_rows=730))  # fmt: skip
    # Chunks of 730, 730 and 40 records: 36.5 and 2 decoys, rounded half up.
    assert report.decoys == 37 + 37 + 2
    assert report.records_in == report.encoded == 1500 and report.reconciles()
    ids = read_key_map(tmp_path / "p.keys.csv")
    decoy_rows = [r for r, i in enumerate(ids) if i == DECOY_LOCAL_ID]
    assert len(ids) == 1576 and len(decoy_rows) == 76
    assert [i for i in ids if i] == frame.local_id.tolist()  # the records keep their order
    assert decoy_rows[0] < 100 and decoy_rows[-1] > 1400  # spread over the file
    assert min(decoy_rows[:37]) < 200 and max(decoy_rows[:37]) > 550  # and over each chunk
    enc = read_encodings(out)
    header = enc.header
    assert header["record_count"] == len(enc) == 1576
    assert header["input_summary"] == {"records_in": 1576, "excluded_no_consent": 0,
                                       "rejected": 0}  # fmt: skip
    # Coverage counts the decoys' values too: sex is present in every row.
    assert {f["name"]: f["present"] for f in header["features"]}["sex"] == 1576
    # The real rows are the records' encodings, as without decoys.
    plain = _encode(frame, _schema(None)).bits
    real = np.array([i != DECOY_LOCAL_ID for i in ids])
    assert np.array_equal(enc.bits[real], plain)
    assert np.array_equal(enc.bits[~real].shape, (76, 128))
    # Reproducible: the same file and secret give the same .plk.
    again = encode_file(tmp_path / "p.csv", schema, SECRET, tmp_path / "q.plk",
                        EncodeOptions(id_column="local_id", chunk_rows=730))  # fmt: skip
    assert again.decoys == 76
    assert read_encodings(tmp_path / "q.plk").header["content_digest"] == header["content_digest"]


def test_decoy_counts_follow_the_encoded_records_not_the_rows(tmp_path: Path) -> None:
    frame = _people(300).assign(consent=["N" if k % 3 == 0 else "Y" for k in range(300)])
    frame.loc[5, "date_of_birth"] = "31/02/1985"  # rejected
    options = EncodeOptions(id_column="local_id", consent_column="consent")
    enc = encode_dataframe(frame, _schema({"decoys": 0.1}), SECRET, options)
    report = enc.report
    assert (report.excluded_no_consent, report.rejected, report.encoded) == (100, 1, 199)
    assert report.decoys == 20 and report.reconciles() and len(enc) == 219
    assert enc.header["input_summary"]["records_in"] == 300 + 20
    assert enc.local_ids is not None and enc.local_ids.count(DECOY_LOCAL_ID) == 20


def test_decoys_are_recombinations_of_the_records_values() -> None:
    """Each feature value of a decoy is a value some real record has."""
    names = ("given", "surname", "dob", "postcode")
    features = [
        {"identifier": name, "format": {"type": "string", "encoding": "utf-8"},
         "hashing": {"comparison": {"type": "exact"}, "strategy": {"bitsPerToken": 30}}}
        for name in names
    ]  # fmt: skip
    doc = schema_doc(features) | {"hardening": {"decoys": 0.2}}
    schema = parse_schema(doc)
    people = _people(200)
    frame = pd.DataFrame({"rec_id": people.local_id, "given": people.given_name,
                          "surname": people.surname, "dob": people.date_of_birth,
                          "postcode": people.postcode})  # fmt: skip
    enc = encode_dataframe(frame, schema, SECRET, EncodeOptions(id_column="rec_id"))
    assert enc.local_ids is not None
    is_decoy = np.array([i == DECOY_LOCAL_ID for i in enc.local_ids])
    assert is_decoy.sum() == 40
    # Each real value's own filter: the value alone, every other feature missing.
    own: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        values = sorted(set(frame[name]))
        alone = pd.DataFrame({"rec_id": values} | {n: values if n == name else "" for n in names})
        bits = encode_dataframe(alone, parse_schema(schema_doc(features)), SECRET).bits
        own[name] = dict(zip(values, bits, strict=True))
    real_rows = {enc.bits[k].tobytes() for k in np.flatnonzero(~is_decoy)}
    copies = 0
    for decoy in enc.bits[is_decoy]:
        # A value is in the decoy when all its bits are: 30 bits of 1024, by chance never.
        # Every feature contributes one such value, and the decoy is their bits, no more.
        parts = [[f for f in own[name].values() if not (f & ~decoy).any()] for name in names]
        assert all(parts), "a decoy value no real record has"
        assert any(
            np.array_equal(np.bitwise_or.reduce(np.stack(combo)), decoy)
            for combo in itertools.product(*parts)
        )
        copies += decoy.tobytes() in real_rows
    assert copies <= 2  # recombined: (almost) no real record's values


def test_decoys_get_pseudonyms_and_leave_withdrawal_lists(tmp_path: Path) -> None:
    frame = _people(400)
    key = RecordKey(bytes(range(32)))
    out = tmp_path / "k.plk"
    report = encode_file(_write(frame, tmp_path / "k.csv"), _schema({"decoys": 0.05}), SECRET,
                         out, EncodeOptions(id_column="local_id", record_key=key))  # fmt: skip
    assert report.decoys == 20
    enc = read_encodings(out)
    ids = read_key_map(tmp_path / "k.keys.csv")
    keys = enc.record_keys
    assert keys is not None and len(set(keys.tolist())) == len(keys) == 420
    real = [k for k, i in enumerate(ids) if i != DECOY_LOCAL_ID]
    assert keys[real].tolist() == key.pseudonyms(frame.local_id.tolist()).tolist()
    # The key map as a withdrawal list: its records, not its decoys.
    assert read_local_ids(tmp_path / "k.keys.csv") == frame.local_id.tolist()


def test_encode_file_and_encode_dataframe_agree_on_a_hardened_schema(tmp_path: Path) -> None:
    frame = _people(1200)
    key = RecordKey(bytes(range(32)))
    schema = _schema(ALL)
    options = EncodeOptions(id_column="local_id", chunk_rows=500, record_key=key)
    out = tmp_path / "all.plk"
    report = encode_file(_write(frame, tmp_path / "all.csv"), schema, SECRET, out, options)
    memory = encode_dataframe(frame, schema, SECRET, options)
    from_file = read_encodings(out)
    assert report.decoys == memory.report.decoys == 25 + 25 + 10
    assert np.array_equal(from_file.bits, memory.bits)
    assert np.array_equal(np.asarray(from_file.record_key_bytes), memory.record_key_bytes)
    assert read_key_map(tmp_path / "all.keys.csv") == memory.local_ids
    assert (np.bitwise_count(memory.bits).sum(axis=1) != 1024).any()  # blipped after balancing
    # The header in memory is the one the file holds (pseudonyms' offset and digest too).
    assert memory.plk_header.model_copy(
        update={"created_at": ""}
    ) == from_file.plk_header.model_copy(update={"created_at": ""})


def test_the_cli_shows_the_hardening(tmp_path: Path, secret_file: Path) -> None:
    path = tmp_path / "hardened.json"
    path.write_text(json.dumps(_schema(ALL).raw))
    shown = runner.invoke(app, ["validate-schema", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "bit length 2048 (a balanced 1024-bit filter)" in shown.output
    assert "hardening: balanced, recordSalt date_of_birth[0:4], blip 0.02, decoys 0.05" in (
        shown.output
    )
    src = _write(_people(100), tmp_path / "people.csv")
    out = tmp_path / "people.plk"
    done = runner.invoke(app, ["encode", str(src), "--schema", str(path), "--secret-file",
                               str(secret_file), "--id-column", "local_id", "--out", str(out),
                               "--report", str(tmp_path / "report.json")])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "decoys added" in done.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["records_in"], report["encoded"], report["decoys"]) == (100, 100, 5)
    inspected = runner.invoke(app, ["inspect", str(out)])
    assert inspected.exit_code == 0, inspected.output
    assert "2048" in inspected.output and "105" in inspected.output
    with (tmp_path / "people.keys.csv").open(newline="") as fh:
        assert sum(1 for row in csv.DictReader(fh) if not row["local_id"]) == 5
