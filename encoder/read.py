"""Reading partner files (CSV, XLSX, Parquet) in bounded-memory chunks of string columns.

Every value reaches the pipeline as text, exactly as the file holds it: no type inference,
no silent conversion of "" to null. Errors name the file, the row or line, and the column,
never a value.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["CSV_DELIMITERS", "Chunk", "InputError", "TableReader", "open_table", "string_buffers"]

CSV_DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_BYTES = 1 << 16
_BOM = codecs.BOM_UTF8


class InputError(ValueError):
    """A partner file cannot be read; the message names the file and where (never a value)."""


@dataclass(frozen=True)
class Chunk:
    """A block of consecutive rows.

    Attributes:
        first_row: 1-based data-row number of the first row (the header is not counted).
        columns: The requested columns, as Arrow string arrays without nulls.
    """

    first_row: int
    columns: dict[str, pa.Array]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


class TableReader:
    """A partner file opened for chunked reading."""

    def __init__(self, path: Path, columns: list[str], estimated_rows: int | None) -> None:
        self.path = path
        self.columns = columns
        #: Data rows the file holds, exact or estimated (for progress bars); None if unknown.
        self.estimated_rows = estimated_rows
        self.rows_read = 0

    def chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
        """Yield chunks of at most `chunk_rows` rows holding the `wanted` columns."""
        raise NotImplementedError  # pragma: no cover

    def _rechunk(self, batches: Iterator[dict[str, pa.Array]], chunk_rows: int) -> Iterator[Chunk]:
        """Regroup the reader's batches into chunks of exactly `chunk_rows` rows (the last less).

        Larger chunks let more records share the work on repeated values; fixed sizes keep
        memory predictable whatever block size the underlying reader uses.
        """
        pending: list[dict[str, pa.Array]] = []
        held = 0
        for batch in batches:
            n = len(next(iter(batch.values()))) if batch else 0
            start = 0
            while start < n:
                take = min(chunk_rows - held, n - start)
                pending.append({k: v.slice(start, take) for k, v in batch.items()})
                held += take
                start += take
                if held == chunk_rows:
                    yield self._emit(pending, held)
                    pending, held = [], 0
        if held:
            yield self._emit(pending, held)

    def _emit(self, parts: list[dict[str, pa.Array]], rows: int) -> Chunk:
        if len(parts) == 1:
            columns = parts[0]
        else:
            columns = {k: pa.concat_arrays([p[k] for p in parts]) for k in parts[0]}
        chunk = Chunk(self.rows_read + 1, columns)
        self.rows_read += rows
        return chunk


class _CsvReader(TableReader):
    def __init__(self, path: Path, delimiter: str | None, encoding: str) -> None:
        self._size = path.stat().st_size
        if self._size == 0:
            raise InputError(f"{path}: the file is empty (a header row is expected)")
        with path.open("rb") as fh:
            sample = fh.read(_SAMPLE_BYTES)
        self.encoding = _detect_encoding(sample) if encoding == "auto" else encoding
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise InputError(f"{path}: unknown encoding {self.encoding!r}") from None
        text = _decode_sample(path, sample, self.encoding)
        lines = text.splitlines()
        header_line = lines[0] if text.strip() else ""
        if not header_line.strip():
            raise InputError(f"{path}: the first line is empty (a header row is expected)")
        self.delimiter = delimiter or _sniff_delimiter(text)
        header = next(csv.reader([header_line], delimiter=self.delimiter))
        # Rows estimated from the sample's average line length (exact for small files).
        data_lines = max(len(lines) - 1, 0)
        if len(sample) < _SAMPLE_BYTES or not data_lines:
            estimate = data_lines
        else:
            estimate = round(self._size / (len(sample) / len(lines))) - 1
        super().__init__(path, [h.strip() for h in header], estimate)
        _check_header(path, self.columns)

    def chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
        stream = self.path.open("rb")
        read_options = pacsv.ReadOptions(
            block_size=1 << 20,  # small blocks: Arrow reads ahead, and memory is the budget
            encoding="utf8"
            if self.encoding.lower().replace("-", "") in ("utf8", "utf8sig")
            else self.encoding,
            column_names=self.columns,
            skip_rows=1,
        )
        parse_options = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True)
        convert_options = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in wanted},
            include_columns=wanted,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )

            def batches() -> Iterator[dict[str, pa.Array]]:
                for batch in reader:
                    yield {c: batch.column(c) for c in wanted}

            yield from self._rechunk(batches(), chunk_rows)
        except pa.ArrowInvalid as exc:
            raise self._explain(str(exc)) from None
        finally:
            stream.close()

    def _explain(self, arrow_message: str) -> InputError:
        """Turn Arrow's error (which may quote data) into one naming the row, never a value."""
        if "UTF8" in arrow_message or "decode" in arrow_message.lower():
            return InputError(_first_undecodable_line(self.path, self.encoding))
        expected = len(self.columns)
        with self.path.open("r", encoding=self.encoding, errors="replace", newline="") as fh:
            rows = csv.reader(fh, delimiter=self.delimiter)
            next(rows, None)
            for number, row in enumerate(rows, start=1):
                if len(row) != expected:
                    return InputError(
                        f"{self.path}, row {number}: {len(row)} fields where the header has "
                        f"{expected} (delimiter {self.delimiter!r}; is a value with the "
                        "delimiter not quoted, or is the delimiter wrong? see --delimiter)"
                    )
        return InputError(f"{self.path}: the file cannot be parsed as CSV")


class _ExcelReader(TableReader):
    def __init__(self, path: Path, sheet: str | None) -> None:
        import openpyxl  # imported here: only Excel users pay for it

        try:
            self._book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many unrelated types for a bad file
            raise InputError(
                f"{path}: not a readable XLSX workbook ({type(exc).__name__})"
            ) from None
        if sheet is not None and sheet not in self._book.sheetnames:
            raise InputError(f"{path}: no sheet named {sheet!r} (sheets: {self._book.sheetnames})")
        self._sheet = self._book[sheet] if sheet else self._book.worksheets[0]
        self._rows = self._sheet.iter_rows(values_only=True)
        header = next(self._rows, None)
        if header is None:
            raise InputError(f"{path}: the sheet is empty (a header row is expected)")
        names = [_cell_text(h).strip() for h in header]
        while names and not names[-1]:
            names.pop()
        rows = self._sheet.max_row  # from the sheet's stored dimensions; may be absent
        super().__init__(path, names, rows - 1 if rows else None)
        _check_header(path, self.columns)

    def chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
        positions = [self.columns.index(c) for c in wanted]
        width = len(self.columns)

        def batches() -> Iterator[dict[str, pa.Array]]:
            buffer: list[list[str]] = [[] for _ in wanted]
            for row in self._rows:
                if len(row) > width and any(v is not None for v in row[width:]):
                    raise InputError(
                        f"{self.path}, row {self.rows_read + len(buffer[0]) + 1}: values beyond "
                        "the last named column"
                    )
                for out, pos in zip(buffer, positions, strict=True):
                    out.append(_cell_text(row[pos]) if pos < len(row) else "")
                if len(buffer[0]) >= chunk_rows:
                    yield {c: pa.array(v, pa.string()) for c, v in zip(wanted, buffer, strict=True)}
                    buffer = [[] for _ in wanted]
            if buffer[0]:
                yield {c: pa.array(v, pa.string()) for c, v in zip(wanted, buffer, strict=True)}

        try:
            yield from self._rechunk(batches(), chunk_rows)
        finally:
            self._book.close()


class _ParquetReader(TableReader):
    def __init__(self, path: Path) -> None:
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(
                f"{path}: not a readable Parquet file ({type(exc).__name__})"
            ) from None
        super().__init__(path, list(self._file.schema_arrow.names), self._file.metadata.num_rows)
        _check_header(path, self.columns)

    def chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
        def batches() -> Iterator[dict[str, pa.Array]]:
            for batch in self._file.iter_batches(batch_size=chunk_rows, columns=wanted):
                yield {c: _as_text(batch.column(c), self.path, c) for c in wanted}

        yield from self._rechunk(batches(), chunk_rows)


def open_table(
    path: Path,
    *,
    delimiter: str | None = None,
    encoding: str = "auto",
    sheet: str | None = None,
) -> TableReader:
    """Open a partner file; its format is chosen by extension (.csv/.tsv/.txt, .xlsx, .parquet).

    Args:
        delimiter: CSV delimiter; detected among , ; tab | when not given.
        encoding: CSV text encoding; `auto` takes UTF-8 (with or without BOM) when the start
            of the file decodes as UTF-8, else Windows-1252.
        sheet: XLSX sheet name; the first sheet by default.
    """
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _ExcelReader(path, sheet)
    if suffix in (".parquet", ".pq"):
        return _ParquetReader(path)
    if suffix in (".csv", ".tsv", ".txt", ".psv", ""):
        return _CsvReader(path, delimiter, encoding)
    raise InputError(f"{path}: unsupported file type {suffix!r} (use CSV, XLSX or Parquet)")


def _check_header(path: Path, columns: list[str]) -> None:
    seen: set[str] = set()
    for number, name in enumerate(columns, start=1):
        if not name:
            raise InputError(f"{path}: header column {number} has no name")
        if name in seen:
            raise InputError(f"{path}: header names column {name!r} twice")
        seen.add(name)


def _detect_encoding(sample: bytes) -> str:
    if sample.startswith(_BOM):
        return "utf-8-sig"
    try:
        # A multi-byte character may be cut at the end of the sample.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _decode_sample(path: Path, sample: bytes, encoding: str) -> str:
    try:
        return codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
    except UnicodeDecodeError:
        raise InputError(_first_undecodable_line(path, encoding)) from None


def _sniff_delimiter(text: str) -> str:
    """The candidate delimiter that splits the first lines into the same, largest count."""
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(lines) > 1 and len(text) >= _SAMPLE_BYTES:
        lines = lines[:-1]  # the last line of a full sample may be cut short
    best, best_fields = ",", 1
    for candidate in CSV_DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=candidate)}
        fields = next(iter(counts)) if len(counts) == 1 else 1
        if fields > best_fields:
            best, best_fields = candidate, fields
    return best


def _first_undecodable_line(path: Path, encoding: str) -> str:
    decoder_name = "utf-8" if encoding == "utf-8-sig" else encoding
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode(decoder_name)
            except UnicodeDecodeError:
                hint = (
                    " (is it Windows-1252? use --encoding cp1252)"
                    if decoder_name.replace("-", "").lower() == "utf8"
                    else ""
                )
                return f"{path}, line {number}: bytes that are not valid {encoding}{hint}"
    return f"{path}: bytes that are not valid {encoding}"


def _cell_text(value: Any) -> str:
    """Excel cell → text, the way a person reading the sheet would write it."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_text(column: pa.Array | pa.ChunkedArray, path: Path, name: str) -> pa.Array:
    """A Parquet column as strings: dates as ISO, nulls as empty strings."""
    try:
        if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
            import pyarrow.compute as pc

            text = pc.strftime(column, format="%Y-%m-%d")
        else:
            text = column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InputError(
            f"{path}: column {name!r} has type {column.type}, which cannot be read as text"
        ) from None
    return text.fill_null("")


def string_buffers(values: pa.Array) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The 64-bit offsets and the UTF-8 bytes of a string array, for kernels that read them.

    Value `v` is `data[offsets[v]:offsets[v + 1]]`. The bytes are not copied (the offsets are
    when the array must be widened to 64-bit offsets).
    """
    values = values.cast(pa.large_string())
    _, offsets_buf, data_buf = values.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    )
    return offsets, data
