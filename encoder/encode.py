"""The encoding pipeline's orchestration: read → consent → standardise → validate → hash → write.

The steps live in their own modules: the options and their early checks
(`encoder.options`), value formatting (`encoder.formatting`), chunk encoding on worker
threads (`encoder.chunks`), the outputs (`encoder.outputs`) and the report
(`encoder.report`). This module runs them over a table, chunk by chunk, writing the chunks
back in input order.

Checks that can fail a run come as early as they can: options (a date format) before the
file is opened, the header before any record is read, unique local IDs in a first pass over
the ID column alone (`encoder.unique_ids`), before any encoding work; the share of rejected
records once all are counted, before anything is moved into place. Row numbers in messages
and in the rejects file are the ones a spreadsheet shows (`TableReader.sheet_row`); the key
map's rows are 0-based encoding rows, the rows of the `.plk` file.

Local IDs are used in their canonical form (`encoder.keymap`: surrounding whitespace
removed) by the key map, the duplicate check and, with a record key, the record pseudonyms
written after the bits; an ID with a control character rejects its record, since no
withdrawal list could name it.

A schema's hardening (`encoder.hardening`) is applied to each chunk's folded filters. Its
decoys are made per chunk (`encoder.chunks`); their key-map rows have an empty local ID,
and the `.plk` header counts them as records.

A feature the partner declares absent (`EncodeOptions.absent`) is given a blank column, so
it is encoded exactly as a blank value is (missing: no tokens, an empty record salt, absent
from derived features); the report and the header record which features the file lacks.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from encoder.chunks import (
    ChunkEncoder,
    ChunkResult,
    EncodingKeys,
    encode_in_worker_thread,
    init_worker_thread,
)
from encoder.fileformat import Encodings
from encoder.fileheader import HeaderFacts, InputSummary, header_for
from encoder.keymap import canonical_local_ids, has_control_characters
from encoder.keys import Secret, key_check_value
from encoder.options import (
    DEFAULT_CONSENT_VALUES,
    DEFAULT_MAX_REJECT_RATE,
    EncodeError,
    EncodeOptions,
    absent_features,
    check_date_format,
    resolve_columns,
)
from encoder.outputs import (
    REJECTED,
    REJECTS_HEADER,
    FileOutputs,
    MemoryOutputs,
    Outputs,
    check_outputs_free,
    output_paths,
)
from encoder.read import Chunk, TableReader, open_table
from encoder.report import EncodeReport
from encoder.schema import LinkageSchema
from encoder.unique_ids import check_unique_ids, empty_ids

# The names callers have long imported from here, whatever their home now.
__all__ = [
    "DEFAULT_CONSENT_VALUES",
    "DEFAULT_MAX_REJECT_RATE",
    "REJECTS_HEADER",
    "EncodeError",
    "EncodeOptions",
    "EncodeReport",
    "check_date_format",
    "encode_dataframe",
    "encode_file",
    "output_paths",
]


@dataclass(frozen=True)
class _Prepared:
    """A chunk made ready in the main thread: the encoder's arguments, and what stays behind."""

    first_row: int
    n_rows: int
    columns: dict[str, pa.Array | None]  # feature → raw column (None: optional and absent)
    active: np.ndarray[Any, np.dtype[np.bool_]]  # consent given, usable local ID
    ids: pa.Array  # canonical local IDs of all rows
    no_consent: int
    id_rejects: list[tuple[int, str]]  # (row in chunk, reason) of unusable local IDs

    def encode(self, encoder: ChunkEncoder) -> ChunkResult:
        """Encode the chunk with `encoder`."""
        return encoder.encode(self.first_row, self.n_rows, self.columns, self.active)

    def submit(self, pool: cf.ThreadPoolExecutor) -> cf.Future[ChunkResult]:
        """Encode the chunk on a worker thread of `pool` (`init_worker_thread`)."""
        return pool.submit(
            encode_in_worker_thread, self.first_row, self.n_rows, self.columns, self.active
        )


@dataclass
class _Run:
    """State of one encoding run over a table."""

    schema: LinkageSchema
    options: EncodeOptions
    reader: TableReader
    report: EncodeReport
    feature_columns: dict[str, str | None]
    absent: frozenset[str]  # features the input does not hold (`absent_features`)
    present: Counter[str] = field(default_factory=Counter)  # real records with a value
    present_out: Counter[str] = field(default_factory=Counter)  # the same, decoys included
    as_missing: Counter[str] = field(default_factory=Counter)
    rejected_by_field: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    rows_out: int = 0  # rows written: encoded records and decoys

    def wanted_columns(self) -> list[str]:
        cols = [c for c in self.feature_columns.values() if c is not None]
        for extra in (self.options.id_column, self.options.consent_column):
            if extra is not None:
                cols.append(extra)
        return list(dict.fromkeys(cols))

    def consented(self, chunk: Chunk) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Which rows of a chunk have consent (all, without a consent column)."""
        if self.options.consent_column is None:
            return np.ones(len(chunk), dtype=bool)
        consent = pc.utf8_lower(pc.utf8_trim_whitespace(chunk.columns[self.options.consent_column]))
        yes = pa.array(sorted(v.lower() for v in self.options.consent_values), pa.string())
        result: np.ndarray[Any, np.dtype[np.bool_]] = pc.is_in(consent, value_set=yes).to_numpy(
            zero_copy_only=False
        )
        return result

    def prepare(self, chunk: Chunk) -> _Prepared:
        """Main-process part of a chunk: consent, local IDs, dictionary encoding."""
        n = len(chunk)
        active = self.consented(chunk)
        no_consent = int(n - active.sum())
        if self.options.id_column is not None:
            # The key map, the duplicate check and the pseudonyms all use canonical IDs.
            ids = canonical_local_ids(chunk.columns[self.options.id_column])
            empty_id = empty_ids(ids)
            control_id = has_control_characters(ids) & ~empty_id
        else:
            ids = pa.array([str(chunk.first_row + i) for i in range(n)], pa.string())
            empty_id = control_id = np.zeros(n, dtype=bool)
        id_rejects = [(int(r), "local ID is empty") for r in np.flatnonzero(empty_id & active)]
        id_rejects += [
            (int(r), "local ID has a control character")
            for r in np.flatnonzero(control_id & active)
        ]
        active &= ~(empty_id | control_id)
        columns = {
            name: (chunk.columns[col] if col is not None else None)
            for name, col in self.feature_columns.items()
        }
        if self.options.absent:
            # Declared absent: a blank in every row, so the value is encoded exactly as a
            # blank one is (whatever the schema's missing-value rule makes of it).
            blank = pc.fill_null(pa.nulls(n, pa.string()), "")
            columns.update(dict.fromkeys(self.options.absent, blank))
        return _Prepared(chunk.first_row, n, columns, active, ids, no_consent, id_rejects)

    def absorb(self, result: ChunkResult, chunk: _Prepared, outputs: Outputs) -> None:
        """Main-process part after encoding: write bits, key map and rejects, count."""
        n = result.valid.shape[0]
        report = self.report
        declared = self.options.absent
        if declared:
            # A blank the schema calls invalid (no missingValue) but treats as missing: for a
            # feature the partner does not hold that is no fault of a record, so not listed.
            result.rejects = [line for line in result.rejects if line[1] not in declared]
            for name in declared:
                result.as_missing.pop(name, None)
        report.records_in += n
        report.excluded_no_consent += chunk.no_consent
        id_field = self.options.id_column or "local_id"
        lines = result.rejects + [
            (result.first_row + r, id_field, REJECTED, reason) for r, reason in chunk.id_rejects
        ]
        lines.sort()
        sheet_row = self.reader.sheet_row
        lines = [(sheet_row(row), name, action, reason) for row, name, action, reason in lines]
        rejected = [line for line in lines if line[2] == REJECTED]
        report.rejected += len({row for row, _, _, _ in rejected})
        outputs.rejects(lines)
        for _, name, _, reason in rejected:
            self.rejected_by_field[name] += 1
            self.reasons[f"{name}: {reason}"] += 1
        keep = np.flatnonzero(result.valid)
        ids = chunk.ids.take(pa.array(keep))
        key = self.options.record_key
        pseudonyms = None if key is None else key.pseudonym_bytes(ids.to_pylist())
        report.encoded += len(ids)
        if result.decoys.size:
            ids, pseudonyms = result.with_decoys(ids, pseudonyms)
            report.decoys += result.decoys.size
        outputs.encoded(result.bits, self.rows_out, ids, pseudonyms)
        self.rows_out += len(ids)
        self.present.update(result.present)
        self.present_out.update(result.present)
        self.present_out.update(result.decoy_present)
        self.as_missing.update(result.as_missing)

    def check_reject_rate(self) -> None:
        """Fail when more records were rejected than `max_reject_rate` allows.

        So many rejections usually mean two columns are swapped or a column is mapped
        wrongly: encoding the few that pass would send the unit a useless file.
        """
        report, limit = self.report, self.options.max_reject_rate
        with_consent = report.records_in - report.excluded_no_consent
        if not with_consent or report.rejected <= limit * with_consent:
            return
        top = [
            f"{name} {count:,}{self._column_of(name)}"
            for name, count in self.rejected_by_field.most_common(3)
        ]
        reasons = [f"{reason} ({count:,})" for reason, count in self.reasons.most_common(3)]
        raise EncodeError(
            f"{self.reader.path}: {report.rejected:,} of {with_consent:,} records with consent "
            f"were rejected ({report.rejected / with_consent:.0%}), more than --max-reject-rate "
            f"{limit:g} allows; nothing was written. Rejections by field: {', '.join(top)}; "
            f"most common reasons: {'; '.join(reasons)}. So many usually mean swapped or "
            "wrongly mapped columns: check the --column mappings (and --date-format); if the "
            "data really is this poor, rerun with a higher --max-reject-rate (1 never fails)"
        )

    def _column_of(self, name: str) -> str:
        column = self.feature_columns.get(name)
        return f" (from column {column!r})" if column is not None and column != name else ""

    def summary(self) -> InputSummary:
        """The header's counts.

        Decoys count as records in, as they count in its record_count: the header's
        numbers still add up, and say nothing of how many rows are decoys.
        """
        report = self.report
        return InputSummary(
            records_in=report.records_in + report.decoys,
            excluded_no_consent=report.excluded_no_consent,
            rejected=report.rejected,
        )

    def coverage(self) -> list[tuple[str, int]]:
        """The header's field coverage: rows with a value, decoys included.

        Real records alone, against a record_count with decoys, would give their number away.
        """
        return [(f.name, self.present_out[f.name]) for f in self.schema.hashed_features]

    def header_facts(self) -> HeaderFacts:
        """What the header states: versions, fingerprints, coverage and counts."""
        return HeaderFacts(
            encoder_version=version("pacelink"),
            schema_fingerprint=self.schema.fingerprint,
            key_check_value=self.report.key_check_value,
            features=self.coverage(),
            absent=self.absent,
            input_summary=self.summary(),
            record_key_check=self.report.record_key_check_value,
        )

    def finish_report(self) -> None:
        """Fill in the report's breakdowns once every chunk is absorbed."""
        report = self.report
        report.rejected_by_field = dict(self.rejected_by_field)
        report.rejected_reasons = dict(self.reasons.most_common())
        report.invalid_treated_as_missing = dict(self.as_missing)
        report.absent = [f.name for f in self.schema.hashed_features if f.name in self.absent]
        report.features = {
            f.name: {
                "column": self.feature_columns[f.name],
                "absent": f.name in self.absent,
                "present": self.present[f.name],
                "coverage": (self.present[f.name] / report.encoded) if report.encoded else 0.0,
            }
            for f in self.schema.hashed_features
        }


def _new_run(
    schema: LinkageSchema,
    secret: Secret,
    options: EncodeOptions,
    reader: TableReader,
    source: str,
    file_reader: bool,
) -> _Run:
    """A run's state and report; columns resolved and local IDs checked unique.

    `file_reader`: messages about missing columns may describe the reader's header.
    """
    feature_columns = resolve_columns(
        schema, reader.columns, options, source, reader if file_reader else None
    )
    key = options.record_key
    report = EncodeReport(
        input=source,
        schema_fingerprint=schema.fingerprint,
        key_check_value=key_check_value(secret),
        bit_length=schema.bit_length,
        record_keys=key is not None,
        record_key_check_value=None if key is None else key.check_value,
    )
    absent = absent_features(schema, feature_columns, options)
    run = _Run(schema, options, reader, report, feature_columns, absent)
    if options.id_column is not None:
        check_unique_ids(
            reader, options.id_column, options.consent_column, run.consented, options.chunk_rows
        )
    return run


def _chunks_with_lookahead(chunks: Iterator[Chunk]) -> tuple[list[Chunk], Iterator[Chunk]]:
    first = [c for _, c in zip(range(2), chunks, strict=False)]
    return first, chunks


def encode_file(
    input_path: Path,
    schema: LinkageSchema,
    secret: Secret,
    out: Path,
    options: EncodeOptions | None = None,
    *,
    delimiter: str | None = None,
    encoding: str = "auto",
    sheet: str | None = None,
    skip_rows: int = 0,
    overwrite: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
) -> EncodeReport:
    """Encode a partner file into `out` (.plk), its key map and its rejects file.

    Args:
        input_path: The partner's CSV, XLSX or Parquet file.
        schema: The linkage schema.
        secret: The partnership secret.
        out: The `.plk` to write; the key map and rejects file go beside it (`output_paths`).
        options: How the file maps onto the schema, and how to run.
        delimiter: The CSV delimiter (default: detected).
        encoding: The CSV text encoding (default: detected).
        sheet: The XLSX sheet (default: the first).
        skip_rows: Lines (CSV) or rows (XLSX) above the header, such as a title.
        overwrite: Replace outputs of an earlier run; when False an existing output is
            refused before anything is read (the command line's default, unless --force).
        progress: Called after each chunk with (records done, records expected or None).

    Raises:
        EncodeError, InputError: with a message naming the file, row or column.
    """
    options = options or EncodeOptions()
    started = time.perf_counter()
    keys_path, rejects_path = output_paths(out)
    if not out.parent.exists():
        raise EncodeError(f"{out.parent}: output folder does not exist")
    if not overwrite:
        check_outputs_free((out, keys_path, rejects_path))
    reader = open_table(
        input_path, delimiter=delimiter, encoding=encoding, sheet=sheet, skip_rows=skip_rows
    )
    run = _new_run(schema, secret, options, reader, str(input_path), file_reader=True)
    report = run.report
    # Derived here, once: the worker threads get keys, never the secret.
    keys = EncodingKeys.derive(schema, secret, options.record_key)
    pool: cf.ThreadPoolExecutor | None = None
    try:
        with FileOutputs(out, schema.bit_length) as outputs:
            chunks = reader.chunks(run.wanted_columns(), options.chunk_rows)
            head, rest = _chunks_with_lookahead(chunks)
            if options.workers > 1 and len(head) > 1:
                pool = cf.ThreadPoolExecutor(
                    max_workers=options.workers,
                    thread_name_prefix="pacelink-encode",
                    initializer=init_worker_thread,
                    initargs=(schema, keys, options.date_format),
                )
                _run_parallel(run, pool, [*head, *rest], outputs, progress)
            else:
                local = ChunkEncoder(schema, keys, options.date_format)
                for chunk in [*head, *rest]:
                    prepared = run.prepare(chunk)
                    run.absorb(prepared.encode(local), prepared, outputs)
                    if progress:
                        progress(report.records_in, reader.estimated_rows)
            run.check_reject_rate()
            run.finish_report()
            outputs.finish(run.header_facts())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    report.output, report.key_map, report.rejects_file = str(out), str(keys_path), str(rejects_path)
    report.seconds = time.perf_counter() - started
    report.records_per_second = report.records_in / report.seconds if report.seconds else 0.0
    assert report.reconciles(), "report counts must reconcile"
    return report


def _run_parallel(
    run: _Run,
    pool: cf.ThreadPoolExecutor,
    chunks: Iterator[Chunk] | list[Chunk],
    outputs: Outputs,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    """Keep the workers busy, absorbing results strictly in input order."""
    in_flight: list[tuple[cf.Future[ChunkResult], _Prepared]] = []
    limit = 2 * run.options.workers  # bound on chunks held in memory

    def drain_one() -> None:
        future, prepared = in_flight.pop(0)
        run.absorb(future.result(), prepared, outputs)
        if progress:
            progress(run.report.records_in, run.reader.estimated_rows)

    for chunk in chunks:
        prepared = run.prepare(chunk)
        in_flight.append((prepared.submit(pool), prepared))
        while len(in_flight) >= limit:
            drain_one()
    while in_flight:
        drain_one()


class _FrameReader(TableReader):
    """A DataFrame's text columns as a table: row numbers as if written with a header."""

    def __init__(self, text: pd.DataFrame) -> None:
        """Read `text`, a frame of strings."""
        super().__init__(Path("DataFrame"), list(map(str, text.columns)), len(text))
        self._text = text

    def _chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
        text = self._text

        def batches() -> Iterator[dict[str, pa.Array]]:
            yield {c: pa.array(text[c].tolist(), pa.string()) for c in wanted}

        yield from self._rechunk(batches(), chunk_rows)


def encode_dataframe(
    df: pd.DataFrame,
    schema: LinkageSchema,
    secret: Secret,
    options: EncodeOptions | None = None,
) -> Encodings:
    """Encode a DataFrame in memory; the result's `.report` says what happened to each row.

    Values are read as text (`str(value)`; missing values become empty strings). Rows that are
    rejected or lack consent are left out; `report.rejected_reasons` says why. The same checks
    as `encode_file` apply: unique local IDs and `max_reject_rate` (raising EncodeError).
    Row numbers in messages count the column names as row 1, as in the frame written to a
    spreadsheet. The result's header is the one `encode_file` would write for these rows.
    """
    options = options or EncodeOptions()
    text = df.astype(object).where(df.notna(), "").astype(str)
    reader = _FrameReader(text)
    run = _new_run(schema, secret, options, reader, "DataFrame", file_reader=False)
    report = run.report
    encoder = ChunkEncoder(
        schema, EncodingKeys.derive(schema, secret, options.record_key), options.date_format
    )
    outputs = MemoryOutputs()
    for chunk in reader.chunks(run.wanted_columns(), options.chunk_rows):
        prepared = run.prepare(chunk)
        run.absorb(prepared.encode(encoder), prepared, outputs)
    run.check_reject_rate()
    run.finish_report()
    bits = outputs.all_bits(schema.bit_length)
    pseudonyms = None if options.record_key is None else outputs.all_pseudonyms()
    header = header_for(bits, pseudonyms, run.header_facts())
    return Encodings(
        bits=bits,
        plk_header=header,
        report=report,
        record_key_bytes=pseudonyms,
        local_ids=outputs.local_ids(),
    )
