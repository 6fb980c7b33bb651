"""Privacy harness: the attack setting, the known-pairs attack, and `pacelink schema assess`.

Each attack must succeed where encodings are weak and fail where there is nothing to learn
(random bits of the same density): an attack that never succeeds proves nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.privacy.anchors import anchor_attack, known_pairs
from benchmarks.privacy.assess import run_attack
from benchmarks.privacy.encodings import VARIANTS, variant, weak_schema
from benchmarks.privacy.population import AttackData, attack_data, reidentified
from encoder.cli import app, load_plugins
from encoder.keys import Secret
from encoder.schema import load_schema, parse_schema

runner = CliRunner()


@pytest.fixture(scope="module")
def weak() -> AttackData:
    return attack_data(parse_schema(weak_schema(), "weak"), 800, overlap=0.9, seed=3)


def _random_bits(data: AttackData, seed: int = 0) -> AttackData:
    """The same setting with encodings that carry nothing: random bits, same density."""
    density = float(np.unpackbits(data.encodings).mean())
    rng = np.random.default_rng(seed)
    noise = rng.random((data.encodings.shape[0], data.encodings.shape[1] * 8)) < density
    return dataclasses.replace(data, encodings=np.packbits(noise, axis=1))


def test_attack_setting_has_the_overlap_asked_for(weak: AttackData) -> None:
    assert weak.encodings.shape == (800, 128)
    assert len(weak.tokens) == weak.plaintext.shape[0] == 800
    assert weak.in_register == 720
    present = weak.truth[weak.truth >= 0]
    assert np.unique(present).size == present.size  # one register entry per person
    # The attacker's tokens are the encoder's: every register entry has name and date tokens.
    assert all(any(t.startswith("2:") for t in toks) for toks in weak.tokens)


def test_identical_people_give_identical_tokens_and_encodings() -> None:
    data = attack_data(parse_schema(weak_schema(), "weak"), 300, seed=5)
    by_tokens: dict[frozenset[str], set[bytes]] = {}
    for row, person in enumerate(data.truth):
        by_tokens.setdefault(data.tokens[person], set()).add(data.encodings[row].tobytes())
    assert all(len(codes) == 1 for codes in by_tokens.values())


def test_reidentified_counts_right_guesses_and_demands_one_to_one(weak: AttackData) -> None:
    assert reidentified(weak, weak.truth.copy()) == pytest.approx(0.9)
    assert reidentified(weak, np.full(800, -1, dtype=np.int64)) == 0.0
    twice = np.full(800, -1, dtype=np.int64)
    twice[:2] = 7
    with pytest.raises(ValueError, match="one to one"):
        reidentified(weak, twice)


def test_known_pairs_attack_reidentifies_weak_encodings(weak: AttackData) -> None:
    anchors = known_pairs(weak, 100, seed=1)
    assert (weak.truth[anchors[:, 0]] == anchors[:, 1]).all()
    guesses = anchor_attack(weak, anchors)
    assert (guesses[anchors[:, 0]] == anchors[:, 1]).all()  # what it knew, it keeps
    assert reidentified(weak, guesses) >= 0.8  # measured 0.9 (all it can reach)


def test_known_pairs_attack_learns_nothing_from_random_bits(weak: AttackData) -> None:
    share, _ = run_attack("known-100", _random_bits(weak), seed=1)
    assert share <= 0.02


def test_every_variant_is_a_valid_schema() -> None:
    for name in VARIANTS:
        schema = parse_schema(variant(name), name)
        assert schema.bit_length >= 1024


def test_schema_assess_command_reports_and_plots(tmp_path: Path) -> None:
    load_plugins()
    schema_file = tmp_path / "weak.json"
    schema_file.write_text(json.dumps(weak_schema()), encoding="utf-8")
    out = tmp_path / "assessment"
    result = runner.invoke(
        app,
        [
            "schema", "assess", str(schema_file), "--records", "400",
            "--attacks", "known-10,known-100", "--quality-people", "0", "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "assessment.json").read_text(encoding="utf-8"))
    shares = {a["attack"]: a["reidentified"] for a in doc["attacks"]}
    assert shares["known-100"] >= 0.8
    assert doc["fingerprint"] == load_schema(schema_file).fingerprint
    assert (out / "assessment.png").read_bytes().startswith(b"\x89PNG")
    assert "known-100" in result.output


def test_schema_assess_refuses_bad_input(tmp_path: Path) -> None:
    load_plugins()
    result = runner.invoke(app, ["schema", "assess", str(tmp_path / "missing.json")])
    assert result.exit_code == 2 and "no such schema file" in result.output
    result = runner.invoke(app, ["schema", "assess", "pace-default", "--attacks", "psychic"])
    assert result.exit_code == 2 and "psychic" in result.output


_SAMPLES: dict[tuple[str, int], AttackData] = {}


# A fixed secret keeps the test reproducible. Pattern mining's success depends on the secret
# (tokens whose positions collide confuse the miner): on the weak schema at 3,000 records, 36
# of 40 secrets tried gave >= 90 %, four gave 0-90 %; with a fresh secret per run the test
# failed about one run in ten. This one is the first of those 40 (99.6 %).
_SECRET = Secret(hashlib.sha256(b"test-secret-0").hexdigest())


def _sample(which: str, n: int) -> AttackData:
    """Encoded synthetic records of the weak schema or the shipped default (cached)."""
    if (which, n) not in _SAMPLES:
        schema = load_schema("pace-default") if which == "hardened" else parse_schema(weak_schema())
        _SAMPLES[(which, n)] = attack_data(schema, n, seed=4, secret=_SECRET)
    return _SAMPLES[(which, n)]


# Each attack at the smallest size where it breaks the weak schema: pattern mining needs a
# few thousand records to see token frequencies, the others far fewer.
@pytest.mark.parametrize(
    ("attack", "n", "ceiling"),
    [("pattern-mining", 3000, 0.01), ("graph", 1000, 0.01), ("known-100", 2000, 0.15)],
)
def test_each_attack_breaks_the_weak_schema_and_not_the_hardened_default(
    attack: str, n: int, ceiling: float
) -> None:
    """The issue's honesty check, at a small size: the weak schema falls, the default holds.

    The weak schema is the literature's; the shipped default is salted with the year of birth.
    100 known pairs are 5 % of 2,000 records, so the salt leaves more exposed here than at
    10,000 (2 %).
    """
    assert load_schema("pace-default").hardening.record_salt is not None
    broken, _ = run_attack(attack, _sample("weak", n), seed=2)
    held, _ = run_attack(attack, _sample("hardened", n), seed=2)
    assert broken >= 0.9, f"{attack} re-identified only {broken:.1%} of the weak schema"
    assert held <= ceiling, f"{attack} re-identified {held:.1%} of the hardened default"


def test_schema_assess_names_the_missing_extra() -> None:
    """Without the bench extra (faker) the command says what to install, not a traceback."""
    code = (
        "import sys; sys.modules['faker'] = None\n"
        "from encoder.cli import main\n"
        "sys.argv = ['pacelink', 'schema', 'assess', 'pace-default']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 2
    assert "pip install 'pacelink[bench]'" in done.stderr and "faker" in done.stderr
