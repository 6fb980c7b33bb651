"""Linkage schemas: clkhash v3 schemas plus pacelink's extension keys, validated.

pacelink's keys are per feature (`FeatureExtension`) and, at the top level, the optional
`hardening` of the encodings (`Hardening`). clkhash's master schemas allow both and clkhash
ignores them; the schema's fingerprint covers them, since they are part of the document.

Slightly over 500 lines: the models are the source of the exported JSON Schemas, whose
descriptions they carry, and are kept with the loader that validates against them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
from clkhash import schema as clk_schema
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from encoder.name_roots import name_root

__all__ = [
    "BUNDLED_SCHEMAS",
    "DEFAULT_SCHEMA_NAME",
    "Feature",
    "FeatureExtension",
    "Hardening",
    "LinkageSchema",
    "RecordSalt",
    "SchemaInvalid",
    "derived_value",
    "extension_json_schema",
    "fingerprint",
    "hardening_json_schema",
    "load_schema",
    "parse_schema",
]

#: `--schema pace-default` names the schema shipped with pacelink.
DEFAULT_SCHEMA_NAME = "pace-default"
# The top-level key of the hardening options.
_HARDENING_KEY = "hardening"
# The limits of the rates, as the messages state them.
_MAX_BLIP = 0.5
_MAX_DECOYS = 1.0

StandardiserName = Literal["name", "date", "postcode", "sex", "ni_number", "address"]


class SchemaInvalid(ValueError):
    """The linkage schema is not valid; the message names the file and the JSON path."""


class FeatureExtension(BaseModel):
    """pacelink's optional keys on a feature of a clkhash v3 schema (clkhash ignores them)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    standardise: StandardiserName | None = Field(
        default=None,
        description=(
            "Standardiser applied to the raw value before clkhash formatting: names, dates "
            "(any common UK format to the feature's date format), UK postcodes, sex codes, "
            "National Insurance numbers or address lines."
        ),
    )
    optional: bool = Field(
        default=False,
        description=(
            "The column may be absent from a partner's file; every value is then missing. "
            "A required feature's column must be present."
        ),
    )
    on_invalid: Literal["reject", "missing"] = Field(
        default="reject",
        alias="onInvalid",
        description=(
            "What an invalid value does: 'reject' the whole record (listed in the rejects file) "
            "or treat the value as 'missing' (counted in the report)."
        ),
    )
    derived_from: tuple[str, ...] | None = Field(
        default=None,
        alias="derivedFrom",
        min_length=1,
        description=(
            "The feature reads no column: its value is built from the standardised values of "
            "these earlier features, the missing ones left out, sorted and joined with a "
            "space. Two sources give an order-independent feature (given name and surname "
            "agree even when a partner swapped them); one source gives a second view of a "
            "value (the whole date of birth as one exact token). clkhash, given that value "
            "as a column, encodes the same bits."
        ),
    )
    derive: Literal["name_root"] | None = Field(
        default=None,
        description=(
            "A transform of a derived feature's value (needs derivedFrom). 'name_root': the "
            "root of a given name, one form shared by the name and its nicknames ('bill', "
            "'will' and 'william' give one token), from the pinned nicknames package and a "
            "short table of British and Irish forms; a name not listed is its own root. Only "
            "with exactly one source, standardised as a name. clkhash, given the root as a "
            "column, encodes the same bits."
        ),
    )


class RecordSalt(BaseModel):
    """Where a record's salt comes from: a slice of one feature's value."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    feature: str = Field(
        description=(
            "A hashed, non-derived feature of the schema, chosen for a value that rarely "
            "differs between two records of one person (the date of birth)."
        ),
    )
    start: int = Field(
        default=0,
        ge=0,
        description="First character of the value (as hashed: dates as YYYYMMDD) in the salt.",
    )
    end: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Character after the last one in the salt (absent: to the end of the value). "
            "With a date, 0 to 4 is the year of birth."
        ),
    )

    @model_validator(mode="after")
    def _ordered(self) -> RecordSalt:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be greater than start")
        return self

    def of(self, value: str) -> str:
        """The salt of one record, from its feature's hashed value ("" when missing)."""
        return value[self.start : self.end]


class Hardening(BaseModel):
    """The optional top-level `hardening` of a schema: how encodings are hardened against attacks.

    The attacks are those on Bloom-filter encodings. Every option is off by default; hardened
    encodings are not clkhash-compatible (XOR folding, clkhash's own, is `clkConfig.xor_folds`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)

    balanced: bool = Field(
        default=False,
        description=(
            "Balanced Bloom filters (Schnell 2016): each encoding is a keyed permutation of "
            "the filter followed by its complement, so exactly half its bits are set (the "
            "number of set bits no longer tells how many tokens a record has) and every "
            "position's frequency f has a partner, at a secret place, with 1 - f. Doubles the "
            "encoding's length."
        ),
    )
    record_salt: RecordSalt | None = Field(
        default=None,
        alias="recordSalt",
        description=(
            "Salt each record with a slice of a stable feature (the year of birth): records "
            "with the same salt compare as before, records with different salts not at all."
        ),
    )
    blip: float = Field(
        default=0.0,
        description=(
            "BLoom-and-flIP (Schnell & Borgs 2016): each bit is flipped with this "
            "probability, in [0, 0.5); the flips are a keyed function of the record's bits."
        ),
    )
    decoys: float = Field(
        default=0.0,
        description=(
            "Decoy records added by the partner, as a share in [0, 1] of the records it "
            "encodes: recombinations of its own records' values, encoded like the others, "
            "at random rows; their key-map local_id is empty."
        ),
    )

    @field_validator("blip")
    @classmethod
    def _blip_range(cls, value: float) -> float:
        if math.isnan(value) or not 0.0 <= value < _MAX_BLIP:
            raise ValueError(f"must be in [0, {_MAX_BLIP:g})")
        return value

    @field_validator("decoys")
    @classmethod
    def _decoys_range(cls, value: float) -> float:
        if math.isnan(value) or not 0.0 <= value <= _MAX_DECOYS:
            raise ValueError(f"must be in [0, {_MAX_DECOYS:g}]")
        return value

    @property
    def active(self) -> bool:
        """Whether any option changes the encodings (off: exactly clkhash's bits)."""
        return self.balanced or self.record_salt is not None or self.blip > 0 or self.decoys > 0

    def describe(self) -> str:
        """One line naming the options in force, for people ("none" when none is)."""
        parts = []
        if self.balanced:
            parts.append("balanced")
        salt = self.record_salt
        if salt is not None:
            end = "" if salt.end is None else salt.end
            parts.append(f"recordSalt {salt.feature}[{salt.start}:{end}]")
        if self.blip:
            parts.append(f"blip {self.blip:g}")
        if self.decoys:
            parts.append(f"decoys {self.decoys:g}")
        return ", ".join(parts) or "none"


def hardening_json_schema() -> dict[str, Any]:
    """The JSON Schema of the top-level `hardening` key, as shipped in `schemas/`."""
    schema = Hardening.model_json_schema(by_alias=True)
    # The ranges are checked by validators (for messages that state them); say them here.
    schema["properties"]["blip"] |= {"minimum": 0, "exclusiveMaximum": _MAX_BLIP}
    schema["properties"]["decoys"] |= {"minimum": 0, "maximum": _MAX_DECOYS}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://pacelink.example/schemas/linkage-schema-hardening.schema.json"
    schema["title"] = "pacelink linkage-schema hardening"
    return schema


def extension_json_schema() -> dict[str, Any]:
    """The JSON Schema of the extension keys, as shipped in `schemas/`."""
    schema = FeatureExtension.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://pacelink.example/schemas/linkage-schema-extension.schema.json"
    schema["title"] = "pacelink linkage-schema feature extension"
    return schema


@dataclass(frozen=True)
class Feature:
    """One feature of a linkage schema, in schema order (its position selects its keys)."""

    name: str
    index: int
    ignored: bool
    extension: FeatureExtension
    spec: Any  # clkhash FieldSpec: validation, formatting and hashing properties


@dataclass(frozen=True)
class LinkageSchema:
    """A validated linkage schema."""

    raw: dict[str, Any]
    clk: Any  # clkhash.schema.Schema
    features: tuple[Feature, ...]
    fingerprint: str
    source: str
    hardening: Hardening = field(default_factory=Hardening)

    @property
    def bit_length(self) -> int:
        """Length of an encoding in bits, as written to the `.plk`.

        That is the filter after XOR folding, doubled by a balanced hardening.
        """
        return self.filter_length * (2 if self.hardening.balanced else 1)

    @property
    def filter_length(self) -> int:
        """Length in bits of clkhash's filter, XOR-folded (`clkConfig.l`), before hardening."""
        return int(self.clk.l)

    @property
    def xor_folds(self) -> int:
        """How many times the hashed filter is folded in half by XOR (`clkConfig.xor_folds`)."""
        return int(self.clk.xor_folds)

    @property
    def hash_length(self) -> int:
        """Length of the filter the tokens are hashed into, before folding."""
        return self.filter_length * (1 << self.xor_folds)

    @property
    def hashed_features(self) -> tuple[Feature, ...]:
        """The features clkhash hashes (those not ignored), in schema order."""
        return tuple(f for f in self.features if not f.ignored)

    def derived_values(self, record: Mapping[str, str]) -> dict[str, str]:
        """What clkhash must be given for each derived feature of one record.

        Args:
            record: The canonical values of the source features, as clkhash reads them
                (standardised; "" or the missing-value sentinel when missing).
        """
        hashed: dict[str, str] = {}
        for feature in self.hashed_features:
            value = record.get(feature.name, "")
            missing = feature.spec.hashing_properties.missing_value
            if value and not (missing is not None and value == missing.sentinel):
                hashed[feature.name] = str(feature.spec.format_value(value))
        return {
            f.name: derived_value(
                (hashed.get(s, "") for s in f.extension.derived_from or ()), f.extension.derive
            )
            for f in self.hashed_features
            if f.extension.derived_from
        }


def derived_value(parts: Iterable[str], derive: str | None = None) -> str:
    """A derived feature's value from its sources' hashed values.

    The present ones, each transformed by `derive` (a `FeatureExtension.derive`; None leaves
    them as they are), sorted, joined with a space (so the order of the sources, or a swap
    between them, does not matter).
    """
    present = (part for part in parts if part)
    if derive == "name_root":
        present = (name_root(part) for part in present)
    elif derive is not None:
        raise ValueError(f"unknown derive {derive!r}")
    return " ".join(sorted(present))


def fingerprint(schema_dict: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of a schema."""
    canonical = json.dumps(schema_dict, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _master(version: int) -> dict[str, Any]:
    name = clk_schema.MASTER_SCHEMA_FILE_NAMES[version]
    data = pkgutil.get_data("clkhash", f"schemas/{name}")
    assert data is not None, "clkhash ships its master schemas"
    result: dict[str, Any] = json.loads(data)
    return result


def _validate_against_master(doc: dict[str, Any], source: str) -> None:
    version = doc.get("version")
    if not isinstance(version, int) or version not in clk_schema.MASTER_SCHEMA_FILE_NAMES:
        raise SchemaInvalid(f"{source}: $.version: unsupported schema version {version!r}")
    validator = jsonschema.Draft7Validator(_master(version))
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        message = error.message
        if len(message) > 300:
            message = message[:300] + " ..."
        raise SchemaInvalid(f"{source}: {error.json_path}: {message}")


def parse_schema(doc: Any, source: str = "<schema>") -> LinkageSchema:
    """Validate a schema document and build the schema used for encoding.

    Accepts clkhash v1, v2 and v3 schemas (older ones are converted as clkhash converts
    them) with pacelink's extension keys on features.

    Raises:
        SchemaInvalid: with the JSON path of the first problem.
    """
    if not isinstance(doc, dict):
        raise SchemaInvalid(f"{source}: $: the schema must be a JSON object")
    # clkhash mutates the dicts it is given (it fills in defaults): work on copies, so the
    # fingerprint covers the schema exactly as written.
    doc = copy.deepcopy(doc)
    _validate_against_master(doc, source)
    v3: dict[str, Any] = clk_schema.convert_to_latest_version(doc)
    _validate_against_master(v3, source)
    config = v3["clkConfig"]
    if config.get("xorFolds", 0):
        # clkhash's master schema documents `xorFolds` but clkhash reads `xor_folds`; honouring
        # either silently would break bit-identity with clkhash, so we refuse the ambiguity.
        raise SchemaInvalid(
            f"{source}: $.clkConfig.xorFolds: clkhash ignores this key and reads 'xor_folds'; "
            "use 'xor_folds'"
        )
    try:
        clk = clk_schema.from_json_dict(copy.deepcopy(v3))
    except (clk_schema.SchemaError, ValueError) as exc:
        raise SchemaInvalid(f"{source}: $.features: {exc}".strip()) from None

    length = int(clk.l)
    if length % 8:
        raise SchemaInvalid(
            f"{source}: $.clkConfig.l: bit length {length} is not a multiple of 8; pacelink "
            "stores encodings as whole bytes"
        )
    hash_length = length * 2 ** int(clk.xor_folds)

    features: list[Feature] = []
    seen: set[str] = set()
    for index, (fdoc, spec) in enumerate(zip(v3["features"], clk.fields, strict=True)):
        path = f"$.features[{index}]"
        name = fdoc["identifier"]
        if name in seen:
            raise SchemaInvalid(f"{source}: {path}.identifier: duplicate feature name {name!r}")
        seen.add(name)
        ignored = spec.hashing_properties is None
        try:
            ext = FeatureExtension.model_validate(fdoc)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise SchemaInvalid(f"{source}: {path}.{loc}: {err['msg']}") from None
        if not ignored:
            fhp = spec.hashing_properties
            if fhp.hash_type == "blakeHash":
                if 2 ** int(math.log2(hash_length)) != hash_length:
                    raise SchemaInvalid(
                        f"{source}: {path}.hashing.hash: blakeHash needs a power-of-two filter "
                        f"length, got {hash_length} bits"
                    )
                if int(clk.kdf_key_size) > 64:
                    raise SchemaInvalid(
                        f"{source}: $.clkConfig.kdf.keySize: blakeHash keys are at most 64 bytes"
                    )
            if ext.derived_from is not None:
                _check_derived(ext, fdoc, features, source, path)
            elif ext.derive is not None:
                raise SchemaInvalid(
                    f"{source}: {path}.derive: transforms a derived feature's value; the "
                    "feature needs derivedFrom"
                )
            if ext.standardise == "date" and fdoc["format"]["type"] != "date":
                raise SchemaInvalid(
                    f"{source}: {path}.standardise: the date standardiser needs a feature of "
                    "format type 'date'"
                )
        features.append(Feature(name, index, ignored, ext, spec))
    if _HARDENING_KEY in doc and _HARDENING_KEY not in v3:
        # clkhash's conversion of a v1 schema builds a new document without extra keys.
        v3[_HARDENING_KEY] = copy.deepcopy(doc[_HARDENING_KEY])
    hardening = _hardening(v3.get(_HARDENING_KEY), features, source)
    return LinkageSchema(v3, clk, tuple(features), fingerprint(v3), source, hardening)


def _hardening(doc: Any, features: list[Feature], source: str) -> Hardening:
    """The schema's hardening options (all off without the key).

    A salt must name a hashed, non-derived feature.
    """
    path = f"$.{_HARDENING_KEY}"
    if doc is None:
        return Hardening()
    if not isinstance(doc, dict):
        raise SchemaInvalid(f"{source}: {path}: must be an object")
    try:
        hardening = Hardening.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        raise SchemaInvalid(f"{source}: {path}{loc}: {message}") from None
    salt = hardening.record_salt
    if salt is not None:
        where = f"{source}: {path}.recordSalt.feature"
        found = next((f for f in features if f.name == salt.feature), None)
        if found is None:
            raise SchemaInvalid(f"{where}: {salt.feature!r} is not a feature of this schema")
        if found.ignored:
            raise SchemaInvalid(f"{where}: {salt.feature!r} is ignored (not hashed)")
        if found.extension.derived_from is not None:
            raise SchemaInvalid(
                f"{where}: {salt.feature!r} is derived; name the feature it is built from"
            )
    return hardening


def _check_derived(
    ext: FeatureExtension,
    fdoc: dict[str, Any],
    earlier: list[Feature],
    source: str,
    path: str,
) -> None:
    """A derived feature names distinct, earlier, hashed features that are not derived."""
    assert ext.derived_from is not None
    where = f"{source}: {path}.derivedFrom"
    by_name = {f.name: f for f in earlier}
    if len(set(ext.derived_from)) != len(ext.derived_from):
        raise SchemaInvalid(f"{where}: a feature is named twice")
    for name in ext.derived_from:
        found = by_name.get(name)
        if found is None:
            raise SchemaInvalid(
                f"{where}: {name!r} is not a feature listed before this one; a derived "
                "feature is built from earlier features"
            )
        if found.ignored:
            raise SchemaInvalid(f"{where}: {name!r} is ignored (not hashed), so it has no value")
        if found.extension.derived_from is not None:
            raise SchemaInvalid(f"{where}: {name!r} is itself derived; name its sources instead")
    if ext.derive == "name_root":
        sources = ext.derived_from
        if len(sources) != 1 or by_name[sources[0]].extension.standardise != "name":
            raise SchemaInvalid(
                f"{source}: {path}.derive: 'name_root' takes the root of one given name: "
                "derivedFrom must name exactly one feature, standardised as a name "
                f'("standardise": "name"), not {", ".join(map(repr, sources))}'
            )
    if ext.standardise is not None:
        raise SchemaInvalid(
            f"{source}: {path}.standardise: a derived feature takes its sources' standardised "
            "values and has no standardiser of its own"
        )
    if fdoc["format"]["type"] != "string":
        raise SchemaInvalid(
            f"{source}: {path}.format.type: a derived feature's value is text; use 'string'"
        )


#: Schemas that ship with the encoder, by name: the default, and the same schema without its
#: year-of-birth salt for partnerships where some partners do not hold dates of birth (the
#: trade-off, in quality and in re-identification, is in docs/privacy.md).
BUNDLED_SCHEMAS = (DEFAULT_SCHEMA_NAME, "pace-no-salt")


def _bundled_schema_text(name: str) -> str:
    return resources.files("encoder").joinpath(f"data/{name}.json").read_text("utf-8")


def load_schema(path: str | Path) -> LinkageSchema:
    """Load and validate a schema file; a name in `BUNDLED_SCHEMAS` gives that bundled schema."""
    if str(path) in BUNDLED_SCHEMAS:
        source, text = f"{path} (bundled)", _bundled_schema_text(str(path))
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SchemaInvalid(f"{source}: no such schema file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaInvalid(f"{source}: cannot read the schema: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaInvalid(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    return parse_schema(doc, source)
