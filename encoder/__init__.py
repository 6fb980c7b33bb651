"""pacelink encoder: runs on a partner's premises and turns identifiers into keyed encodings.

The encoder imports nothing from the linkage unit and no web framework: a partner can run it
without any of the service's code paths.
"""

from encoder.encode import EncodeError, EncodeOptions, EncodeReport, encode_dataframe, encode_file
from encoder.fileformat import EncodingFileError, Encodings, read_encodings
from encoder.keys import Secret, SecretError, key_check_value, load_secret
from encoder.read import InputError
from encoder.schema import LinkageSchema, SchemaInvalid, load_schema, parse_schema

__all__ = [
    "EncodeError",
    "EncodeOptions",
    "EncodeReport",
    "EncodingFileError",
    "Encodings",
    "InputError",
    "LinkageSchema",
    "SchemaInvalid",
    "Secret",
    "SecretError",
    "encode_dataframe",
    "encode_file",
    "key_check_value",
    "load_schema",
    "load_secret",
    "parse_schema",
    "read_encodings",
]
