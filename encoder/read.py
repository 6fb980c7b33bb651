"""Reading partner files (CSV, XLSX, Parquet) in bounded-memory chunks of string columns.

Every value reaches the pipeline as text, exactly as the file holds it: no type inference,
no silent conversion of "" to null. Errors name the file, the row or line, and the column,
never a value. Rows are numbered as a spreadsheet shows them: the header is row 1 (plus any
rows skipped above it with `skip_rows`), the first record the row after it.

Header names come from the file too, and a file without a header row has a client's details
in its first row, so messages about the header never quote a name that could be a value
(`encoder.header_row`).
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

from encoder.header_row import InputError, check_header, title_hint

__all__ = [
    "CSV_DELIMITERS",
    "Chunk",
    "InputError",
    "TableReader",
    "open_table",
    "string_buffers",
]

CSV_DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_BYTES = 1 << 16
_BOM = codecs.BOM_UTF8
# Rows after the header looked at to find where the real header is (title rows above it).
_PEEK_ROWS = 10


@dataclass(frozen=True)
class Chunk:
    """A block of consecutive rows.

    Attributes:
        first_row: 1-based data-row number of the first row (the header is not counted);
            `TableReader.sheet_row` turns it into the row number a spreadsheet shows.
        columns: The requested columns, as Arrow string arrays without nulls.
    """

    first_row: int
    columns: dict[str, pa.Array]

    def __len__(self) -> int:
        """Number of rows in the chunk."""
        return len(next(iter(self.columns.values()))) if self.columns else 0


class TableReader:
    """A partner file opened for chunked reading."""

    def __init__(
        self, path: Path, columns: list[str], estimated_rows: int | None, skip_rows: int = 0
    ) -> None:
        """Describe the opened file; `skip_rows` rows lie above its header."""
        self.path = path
        self.columns = columns
        #: Data rows the file holds, exact or estimated (for progress bars); None if unknown.
        self.estimated_rows = estimated_rows
        #: The header's row number as a spreadsheet shows it (1 + rows skipped above it).
        self.header_row = skip_rows + 1
        self.rows_read = 0

    def sheet_row(self, data_row: int) -> int:
        """The row number a spreadsheet shows for a 1-based data-row number (`Chunk.first_row`).

        For CSV it is the record number counting the header (and skipped lines) from 1.
        """
        return data_row + self.header_row

    def chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
        """Yield chunks of at most `chunk_rows` rows holding the `wanted` columns.

        Each call reads the file afresh from its first record, so a reader can be read more
        than once (a first pass over the ID column checks that local IDs are unique).
        """
        self.rows_read = 0
        return self._chunks(wanted, chunk_rows)

    def _chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
        raise NotImplementedError  # pragma: no cover

    def peek_rows(self) -> list[list[str]]:
        """The first few rows after the header, as text, to judge where the header is.

        Only for that: they are never to be shown.
        """
        return []

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
    def __init__(self, path: Path, delimiter: str | None, encoding: str, skip_rows: int) -> None:
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
        all_lines = text.splitlines()
        if skip_rows >= len(all_lines) and len(sample) < _SAMPLE_BYTES:
            raise InputError(
                f"{path}: --skip-rows {skip_rows} skips every line (the file has {len(all_lines)})"
            )
        lines = all_lines[skip_rows:]
        header_line = lines[0] if lines else ""
        if not header_line.strip():
            raise InputError(
                f"{path}: line {skip_rows + 1} is empty (a header row is expected there)"
            )
        body = "\n".join(lines)
        self.delimiter = delimiter or _sniff_delimiter(body)
        header = next(csv.reader([header_line], delimiter=self.delimiter))
        self._skip = skip_rows
        self._peek = [
            [v.strip() for v in row]
            for row in csv.reader(lines[1 : 1 + _PEEK_ROWS], delimiter=self.delimiter)
        ]
        # Rows estimated from the sample's average line length (exact for small files).
        data_lines = max(len(lines) - 1, 0)
        if len(sample) < _SAMPLE_BYTES or not data_lines:
            estimate = data_lines
        else:
            estimate = round(self._size / (len(sample) / len(all_lines))) - 1 - skip_rows
        super().__init__(path, [h.strip() for h in header], estimate, skip_rows)
        if delimiter is None and len(self.columns) == 1 and len(lines) > 1:
            # One field: perhaps a title line above the header, which spoils the sniffing.
            below = _sniff_delimiter("\n".join(lines[1:]))
            rows = list(csv.reader(lines[1 : 1 + _PEEK_ROWS], delimiter=below))
            hint = title_hint(self.header_row, self.columns, rows)
            if hint:
                raise InputError(f"{path}, row {self.header_row}: one field only{hint}")
        check_header(path, self.columns, self.header_row, self._peek)

    def peek_rows(self) -> list[list[str]]:
        return self._peek

    def _chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
        stream = self.path.open("rb")
        read_options = pacsv.ReadOptions(
            block_size=1 << 20,  # small blocks: Arrow reads ahead, and memory is the budget
            encoding="utf8"
            if self.encoding.lower().replace("-", "") in ("utf8", "utf8sig")
            else self.encoding,
            column_names=self.columns,
            skip_rows=self._skip + 1,
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
            for _ in range(self._skip):
                fh.readline()
            rows = csv.reader(fh, delimiter=self.delimiter)
            next(rows, None)
            for number, row in enumerate(rows, start=1):
                if len(row) != expected:
                    return InputError(
                        f"{self.path}, row {self.sheet_row(number)}: {len(row)} fields where "
                        f"the header has "
                        f"{expected} (delimiter {self.delimiter!r}; is a value with the "
                        "delimiter not quoted, or is the delimiter wrong? see --delimiter)"
                    )
        return InputError(f"{self.path}: the file cannot be parsed as CSV")


class _ExcelReader(TableReader):
    def __init__(self, path: Path, sheet: str | None, skip_rows: int) -> None:
        self._sheet_name = sheet
        book, rows = self._open(path, skip_rows)
        try:
            header = next(rows, None)
            # Blank rows above the header cannot be it: step over them, counting them, so
            # that row numbers stay the sheet's own (as when reading from the sheet's stored
            # dimensions, which start at the first filled row).
            asked = skip_rows
            while header is not None and not any(_cell_text(v).strip() for v in header):
                skip_rows += 1
                header = next(rows, None)
            if header is None:
                below = f" below the {asked} rows skipped" if asked else ""
                raise InputError(
                    f"{path}: the sheet has no filled row{below} (a header row is expected)"
                )
            names = [_cell_text(h).strip() for h in header]
            while names and not names[-1]:
                names.pop()
            self._peek = [
                [_cell_text(v).strip() for v in row]
                for _, row in zip(range(_PEEK_ROWS), rows, strict=False)
            ]
            count = book[sheet].max_row if sheet else book.worksheets[0].max_row
        finally:
            book.close()
        # max_row comes from the sheet's stored dimensions and may be absent.
        super().__init__(path, names, count - 1 - skip_rows if count else None, skip_rows)
        hint = title_hint(self.header_row, names, self._peek)
        if hint:
            raise InputError(f"{path}, row {self.header_row}: one filled cell only{hint}")
        check_header(path, self.columns, self.header_row, self._peek)

    def _open(self, path: Path, skip_rows: int) -> tuple[Any, Iterator[tuple[Any, ...]]]:
        """The workbook (to be closed by the caller) and its rows from the header on."""
        import openpyxl  # noqa: PLC0415 - only Excel users pay for its import

        try:
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many unrelated types for a bad file
            raise InputError(
                f"{path}: not a readable XLSX workbook ({type(exc).__name__})"
            ) from None
        sheet = self._sheet_name
        if sheet is not None and sheet not in book.sheetnames:
            names = book.sheetnames
            book.close()
            raise InputError(f"{path}: no sheet named {sheet!r} (sheets: {names})")
        ws = book[sheet] if sheet else book.worksheets[0]
        # min_row=1 explicitly: from row 1 even when the stored dimensions start lower, so
        # that row numbers are the spreadsheet's own.
        return book, ws.iter_rows(min_row=skip_rows + 1, values_only=True)

    def peek_rows(self) -> list[list[str]]:
        return self._peek

    def _chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
        positions = [self.columns.index(c) for c in wanted]
        width = len(self.columns)
        book, rows = self._open(self.path, self.header_row - 1)
        next(rows, None)  # the header

        def batches() -> Iterator[dict[str, pa.Array]]:
            buffer: list[list[str]] = [[] for _ in wanted]
            for row in rows:
                if len(row) > width and any(v is not None for v in row[width:]):
                    data_row = self.rows_read + len(buffer[0]) + 1
                    raise InputError(
                        f"{self.path}, row {self.sheet_row(data_row)}: values beyond the last "
                        "named column"
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
            book.close()


class _ParquetReader(TableReader):
    def __init__(self, path: Path) -> None:
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(
                f"{path}: not a readable Parquet file ({type(exc).__name__})"
            ) from None
        super().__init__(path, list(self._file.schema_arrow.names), self._file.metadata.num_rows)
        check_header(path, self.columns, self.header_row, [])

    def _chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
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
    skip_rows: int = 0,
) -> TableReader:
    """Open a partner file; its format is chosen by extension (.csv/.tsv/.txt, .xlsx, .parquet).

    Args:
        path: The file to read.
        delimiter: CSV delimiter; detected among , ; tab | when not given.
        encoding: CSV text encoding; `auto` takes UTF-8 (with or without BOM) when the start
            of the file decodes as UTF-8, else Windows-1252.
        sheet: XLSX sheet name; the first sheet by default.
        skip_rows: Lines (CSV) or rows (XLSX) above the header to skip, such as a title.
            Parquet files keep their column names in their schema and refuse it.
    """
    if skip_rows < 0:
        raise InputError(f"--skip-rows {skip_rows}: expected 0 or more")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _ExcelReader(path, sheet, skip_rows)
    if suffix in (".parquet", ".pq"):
        if skip_rows:
            raise InputError(
                f"{path}: --skip-rows applies to CSV and XLSX files only; a Parquet file's "
                "column names are in its schema, not in a row"
            )
        return _ParquetReader(path)
    if suffix in (".csv", ".tsv", ".txt", ".psv", ""):
        return _CsvReader(path, delimiter, encoding, skip_rows)
    raise InputError(f"{path}: unsupported file type {suffix!r} (use CSV, XLSX or Parquet)")


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
            import pyarrow.compute as pc  # noqa: PLC0415 - loads kernels; dates only

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
