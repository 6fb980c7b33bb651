"""Linkage schemas: clkhash v3 schemas plus pacelink's per-feature extension keys, validated."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
from clkhash import schema as clk_schema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "DEFAULT_SCHEMA_NAME",
    "Feature",
    "FeatureExtension",
    "LinkageSchema",
    "SchemaInvalid",
    "derived_value",
    "extension_json_schema",
    "fingerprint",
    "load_schema",
    "parse_schema",
]

#: `--schema pace-default` names the schema shipped with pacelink.
DEFAULT_SCHEMA_NAME = "pace-default"

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

    @property
    def bit_length(self) -> int:
        """Length of an encoding in bits, after XOR folding."""
        return int(self.clk.l)

    @property
    def xor_folds(self) -> int:
        return int(self.clk.xor_folds)

    @property
    def hash_length(self) -> int:
        """Length of the filter before folding."""
        return self.bit_length * (1 << self.xor_folds)

    @property
    def hashed_features(self) -> tuple[Feature, ...]:
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
            f.name: derived_value(hashed.get(s, "") for s in f.extension.derived_from or ())
            for f in self.hashed_features
            if f.extension.derived_from
        }


def derived_value(parts: Iterable[str]) -> str:
    """A derived feature's value from its sources' hashed values: the present ones, sorted,
    joined with a space (so the order of the sources, or a swap between them, does not
    matter)."""
    return " ".join(sorted(part for part in parts if part))


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
            if ext.standardise == "date" and fdoc["format"]["type"] != "date":
                raise SchemaInvalid(
                    f"{source}: {path}.standardise: the date standardiser needs a feature of "
                    "format type 'date'"
                )
        features.append(Feature(name, index, ignored, ext, spec))
    return LinkageSchema(v3, clk, tuple(features), fingerprint(v3), source)


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
    if ext.standardise is not None:
        raise SchemaInvalid(
            f"{source}: {path}.standardise: a derived feature takes its sources' standardised "
            "values and has no standardiser of its own"
        )
    if fdoc["format"]["type"] != "string":
        raise SchemaInvalid(
            f"{source}: {path}.format.type: a derived feature's value is text; use 'string'"
        )


def _default_schema_text() -> str:
    return resources.files("encoder").joinpath("data/pace-default.json").read_text("utf-8")


def load_schema(path: str | Path) -> LinkageSchema:
    """Load and validate a schema file; the name `pace-default` gives the bundled schema."""
    if str(path) == DEFAULT_SCHEMA_NAME:
        source, text = f"{DEFAULT_SCHEMA_NAME} (bundled)", _default_schema_text()
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
