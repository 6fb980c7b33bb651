"""pacelink encoder: runs on a partner's premises and turns identifiers into keyed encodings.

The encoder imports nothing from the linkage unit and no web framework: a partner can run it
without any of the service's code paths. Names are loaded on first use, so that the command
line starts quickly for commands that need none of the heavy numerical libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from encoder.encode import encode_dataframe, encode_file
    from encoder.fileformat import EncodingFileError, Encodings, read_encodings
    from encoder.header_row import InputError
    from encoder.keymap import KeyMapError, read_local_ids
    from encoder.keys import (
        RecordKey,
        Secret,
        SecretError,
        key_check_value,
        load_record_key,
        load_secret,
    )
    from encoder.options import EncodeError, EncodeOptions
    from encoder.report import EncodeReport
    from encoder.schema import LinkageSchema, SchemaInvalid, load_schema, parse_schema

__all__ = [
    "EncodeError",
    "EncodeOptions",
    "EncodeReport",
    "EncodingFileError",
    "Encodings",
    "InputError",
    "KeyMapError",
    "LinkageSchema",
    "RecordKey",
    "SchemaInvalid",
    "Secret",
    "SecretError",
    "encode_dataframe",
    "encode_file",
    "key_check_value",
    "load_record_key",
    "load_schema",
    "load_secret",
    "parse_schema",
    "read_encodings",
    "read_local_ids",
]

_HOMES = {
    "EncodeError": "options",
    "EncodeOptions": "options",
    "EncodeReport": "report",
    "encode_dataframe": "encode",
    "encode_file": "encode",
    "EncodingFileError": "fileformat",
    "Encodings": "fileformat",
    "read_encodings": "fileformat",
    "KeyMapError": "keymap",
    "read_local_ids": "keymap",
    "RecordKey": "keys",
    "load_record_key": "keys",
    "Secret": "keys",
    "SecretError": "keys",
    "key_check_value": "keys",
    "load_secret": "keys",
    "InputError": "header_row",
    "LinkageSchema": "schema",
    "SchemaInvalid": "schema",
    "load_schema": "schema",
    "parse_schema": "schema",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'encoder' has no attribute {name!r}")
    return getattr(importlib.import_module(f"encoder.{home}"), name)
