"""Streaming row readers for population extracts: CSV, XLSX and JSON.

Memory stays flat in the file size: CSV is read line by line from a text stream (each line
capped), XLSX through openpyxl's read-only mode, JSON arrays through ijson's iterative parser
and NDJSON line by line. Only the first few rows are held at once, to find the header.

Every reader yields ``(row_number, row)`` where ``row_number`` is the number a person sees in the
file (the line in a text editor or the row in Excel) and ``row`` maps canonical column names
(``Kolonne`` values) to the raw cell values; validation turns those into typed values. Problems
with the file as a whole raise ``ExtractFormatError`` whose message names what is wrong and
never echoes cell contents.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from enum import StrEnum
from itertools import chain, islice
from typing import BinaryIO, Self

import ijson
import openpyxl

from services.ingest.domain.errors import ExtractFormatError, MissingColumnsError
from services.ingest.domain.profiles import (
    ColumnProfile,
    HeaderMatch,
    Kolonne,
    describe_headers,
    get_profile,
)
from services.ingest.domain.text import is_blank

Source = str | os.PathLike[str] | BinaryIO
Row = dict[str, object]
NumberedRow = tuple[int, Row]

HEADER_SEARCH_ROWS = 10  # the header may sit below a title line or span a merged 2-row block
SNIFF_BYTES = 64 * 1024
MAX_LINE_CHARS = 1_000_000  # one CSV/NDJSON line; a longer one means binary data or a broken export
CSV_DELIMITERS = (";", ",", "\t")  # Danish Excel writes ";", other tools ",", Excel "Unicode text" tab
DECODE_CHUNK_BYTES = 256 * 1024
# A row with more fields than the header gets this key, so validation can report a shifted row
# (typically an unquoted delimiter inside a name) instead of silently reading the wrong columns.
EXTRA_FIELDS_KEY = "_ekstra_felter"

_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")  # legacy .xls and other OLE compound files
_MAX_CONTROL_CHAR_SHARE = 0.01


class ExtractFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    JSON = "json"


def detect_format(source: Source) -> ExtractFormat:
    """Decide the format from the content, not the file name (uploads are often renamed)."""
    binary, owned = _open_binary(source)
    try:
        head = _peek(binary, 512)
    finally:
        if owned:
            binary.close()
    return _format_from_head(head)


def open_extract(
    source: Source,
    profile: ColumnProfile | str,
    *,
    extract_format: ExtractFormat | None = None,
) -> ExtractReader:
    """Open an extract and locate its header row; raises ``ExtractFormatError`` at once if the
    file is unreadable or required columns are missing. Use as a context manager and iterate.
    A caller's binary stream must be seekable and is left open (but not repositioned)."""
    if isinstance(profile, str):
        profile = get_profile(profile)
    binary, owned = _open_binary(source)
    try:
        chosen = extract_format or _format_from_head(_peek(binary, 512))
        reader_class: Callable[..., ExtractReader] = {
            ExtractFormat.CSV: CsvExtractReader,
            ExtractFormat.XLSX: XlsxExtractReader,
            ExtractFormat.JSON: JsonExtractReader,
        }[chosen]
        return reader_class(binary, profile, owns_stream=owned)
    except BaseException:
        if owned:
            binary.close()
        raise


def iter_extract_rows(
    source: Source,
    profile: ColumnProfile | str,
    *,
    extract_format: ExtractFormat | None = None,
) -> Iterator[NumberedRow]:
    """Generator over ``(row_number, row)``; the file is closed when iteration ends."""
    with open_extract(source, profile, extract_format=extract_format) as reader:
        yield from reader


class ExtractReader(ABC):
    """An opened extract whose header has been found and checked."""

    format: ExtractFormat
    header: HeaderMatch
    header_row_number: int  # as the user sees it; the last row of a multi-row header

    def __init__(self, binary: BinaryIO, profile: ColumnProfile, *, owns_stream: bool) -> None:
        self._binary = binary
        self._owns_stream = owns_stream
        self.profile = profile

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[NumberedRow]:
        return self._rows()

    @abstractmethod
    def _rows(self) -> Iterator[NumberedRow]: ...

    def close(self) -> None:
        if self._owns_stream:
            self._binary.close()

    def _map_row(self, cells: Sequence[object], header: HeaderMatch | None = None) -> Row:
        header = header or self.header
        row: Row = {
            column.value: cells[index] if index < len(cells) else None for column, index in header.column_index.items()
        }
        return row


class _TextExtractReader(ExtractReader):
    """A reader of a text file (CSV, JSON): ``_open`` finds the header through ``self._text``."""

    def __init__(self, binary: BinaryIO, profile: ColumnProfile, *, owns_stream: bool) -> None:
        super().__init__(binary, profile, owns_stream=owns_stream)
        self._text: io.TextIOWrapper | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    @abstractmethod
    def _open(self) -> None: ...

    def close(self) -> None:
        # A caller's stream must outlive us: detach the text layer instead of closing through it.
        if self._text is not None and not self._owns_stream:
            with suppress(ValueError):
                self._text.detach()
            self._text = None
        super().close()


# --- CSV ------------------------------------------------------------------------------------------


class CsvExtractReader(_TextExtractReader):
    format = ExtractFormat.CSV

    def _open(self) -> None:
        self.encoding = detect_text_encoding(self._binary)
        self._text = io.TextIOWrapper(self._binary, encoding=self.encoding, newline="")
        lines = _bounded_lines(self._text)
        try:
            head_lines = list(islice(lines, HEADER_SEARCH_ROWS))
        except UnicodeDecodeError:
            raise ExtractFormatError(f"the first lines are not valid {self.encoding}") from None
        if not any(line.strip() for line in head_lines):
            raise ExtractFormatError("the file contains no header line (it is empty or blank)")
        self.delimiter, header_index, self.header = self._find_header(head_lines)
        self._records = csv.reader(chain(head_lines, lines), delimiter=self.delimiter)
        self._skip_records(header_index + 1)
        self.header_row_number = self._records.line_num

    def _find_header(self, head_lines: list[str]) -> tuple[str, int, HeaderMatch]:
        """Try each delimiter and keep the one under which a complete header appears.

        Choosing by the profile's columns rather than by counting characters also copes with a
        header text that itself contains the other delimiter ("Navn, fulde;CPR-nummer;...").
        """
        best_failure: ExtractFormatError | None = None
        best_score = -1
        for delimiter in sorted(CSV_DELIMITERS, key=lambda d: -sum(line.count(d) for line in head_lines)):
            records = _csv_records_leniently(head_lines, delimiter)
            try:
                index, header = find_header_row(records, self.profile)
            except _HeaderNotFound as failure:
                if failure.best_score > best_score:
                    best_failure, best_score = failure.error, failure.best_score
                continue
            return delimiter, index, header
        assert best_failure is not None
        raise best_failure

    def _skip_records(self, count: int) -> None:
        for _ in range(count):
            next(self._records, None)

    def _rows(self) -> Iterator[NumberedRow]:
        try:
            while True:
                line_before = self._records.line_num
                try:
                    fields = next(self._records)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise ExtractFormatError(f"line {line_before + 1}: malformed CSV ({exc})") from None
                except UnicodeDecodeError:
                    raise ExtractFormatError(
                        f"line {line_before + 1}: bytes that are not valid {self.encoding}"
                    ) from None
                if all(is_blank(field) for field in fields):
                    continue
                row = self._map_row(fields)
                extra = [field for field in fields[self.header.width :] if not is_blank(field)]
                if extra:
                    row[EXTRA_FIELDS_KEY] = len(extra)
                yield line_before + 1, row
        finally:
            self.close()



def detect_text_encoding(binary: BinaryIO) -> str:
    """BOM first; else UTF-8 if the whole file decodes as UTF-8; else Windows-1252 (Danish Excel's
    "CSV (semikolonsepareret)"); Latin-1 as the last resort, because it never fails.

    The whole-file UTF-8 check is a streaming pass in small chunks: a sample would be fooled by a
    file whose first æ appears on line 50,000. The stream is left where it was.
    """
    start = binary.tell()
    head = binary.read(SNIFF_BYTES)
    binary.seek(start)
    if not head:
        raise ExtractFormatError("the file is empty")
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif b"\x00" in head:
        raise ExtractFormatError("the file contains NUL bytes: it is binary data, not CSV text")
    elif _decodes_completely(binary, "utf-8"):
        encoding = "utf-8"
    elif _decodes_completely(binary, "cp1252"):
        encoding = "cp1252"
    else:
        encoding = "latin-1"
    sample = head.decode(encoding, errors="replace")
    control_chars = sum(1 for char in sample if char not in "\t\r\n" and unicodedata.category(char) == "Cc")
    if control_chars > _MAX_CONTROL_CHAR_SHARE * len(sample):
        raise ExtractFormatError("the file contains binary control characters: it is not a CSV text file")
    return encoding


def _decodes_completely(binary: BinaryIO, encoding: str) -> bool:
    start = binary.tell()
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        while chunk := binary.read(DECODE_CHUNK_BYTES):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        binary.seek(start)
    return True


def _bounded_lines(text: io.TextIOBase) -> Iterator[str]:
    """Lines of at most MAX_LINE_CHARS, so a file without line breaks cannot fill the memory."""
    line_number = 0
    while line := text.readline(MAX_LINE_CHARS + 1):
        line_number += 1
        if len(line) > MAX_LINE_CHARS:
            raise ExtractFormatError(
                f"line {line_number} is longer than {MAX_LINE_CHARS:,} characters: "
                "not a CSV extract, or the line breaks are missing"
            )
        yield line


def _csv_records_leniently(lines: list[str], delimiter: str) -> list[list[str]]:
    """The first lines split into records; an unterminated quote just ends the sample."""
    records: list[list[str]] = []
    reader = csv.reader(lines, delimiter=delimiter)
    with suppress(csv.Error):
        records.extend(reader)
    return records


# --- XLSX -----------------------------------------------------------------------------------------


class XlsxExtractReader(ExtractReader):
    format = ExtractFormat.XLSX

    def __init__(self, binary: BinaryIO, profile: ColumnProfile, *, owns_stream: bool) -> None:
        super().__init__(binary, profile, owns_stream=owns_stream)
        try:
            # A file object, not a path: openpyxl would reject a renamed upload by its extension.
            self._workbook = openpyxl.load_workbook(binary, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl surfaces zip, XML and key errors alike
            raise ExtractFormatError(f"the file is not a readable XLSX workbook ({type(exc).__name__})") from None
        try:
            self._locate_header()
        except BaseException:
            self.close()
            raise

    def _locate_header(self) -> None:
        first_failure: _HeaderNotFound | None = None
        for sheet in self._workbook.worksheets:
            # Exporters often write a wrong <dimension>; without this, rows past it are lost.
            sheet.reset_dimensions()
            rows = self._guarded(sheet.iter_rows(values_only=True), sheet.title)
            head_rows = list(islice(rows, HEADER_SEARCH_ROWS))
            try:
                index, self.header = find_header_row(head_rows, self.profile)
            except _HeaderNotFound as failure:
                if first_failure is None or failure.best_score > first_failure.best_score:
                    first_failure = failure
                continue
            self.sheet_name = sheet.title
            self.header_row_number = index + 1
            self._remaining = chain(head_rows[index + 1 :], rows)
            return
        if first_failure is None:
            raise ExtractFormatError("the workbook contains no worksheets")
        raise first_failure.error

    def _rows(self) -> Iterator[NumberedRow]:
        try:
            for row_number, cells in enumerate(self._remaining, start=self.header_row_number + 1):
                if all(is_blank(cell) for cell in cells):
                    continue
                yield row_number, self._map_row(cells)
        finally:
            self.close()

    @staticmethod
    def _guarded(rows: Iterable[tuple], sheet_title: str) -> Iterator[tuple]:
        """Turn a corrupt sheet discovered mid-stream into an ExtractFormatError with the row."""
        row_number = 0
        iterator = iter(rows)
        while True:
            try:
                cells = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                raise ExtractFormatError(
                    f"sheet {sheet_title!r} could not be read after row {row_number} ({type(exc).__name__})"
                ) from None
            row_number += 1
            yield cells

    def close(self) -> None:
        workbook = getattr(self, "_workbook", None)
        if workbook is not None:
            workbook.close()
        super().close()


# --- JSON -----------------------------------------------------------------------------------------


class JsonExtractReader(_TextExtractReader):
    """A JSON array of row objects, or NDJSON (one object per line). Keys are headers."""

    format = ExtractFormat.JSON
    _HEADER_CACHE_LIMIT = 64

    def _open(self) -> None:
        head = _peek(self._binary, SNIFF_BYTES)
        if not head.strip():
            raise ExtractFormatError("the file is empty")
        if head.startswith(codecs.BOM_UTF8):
            self._binary.read(len(codecs.BOM_UTF8))  # RFC 8259 forbids it, but Windows tools add one
            head = head[len(codecs.BOM_UTF8) :]
        first = head.lstrip()[:1]
        if first == b"[":
            items = self._array_items()
        elif first == b"{":
            items = self._ndjson_items()
        else:
            raise ExtractFormatError("expected JSON rows: an array of objects, or one object per line (NDJSON)")
        try:
            first_number, first_item = next(items)
        except StopIteration:
            raise ExtractFormatError("the JSON extract contains no rows, so its columns cannot be checked") from None
        self.header = self._header_for(first_item, first_number)
        self.header_row_number = 0  # JSON has no header row: every object names its own fields
        if not self.header.is_complete:
            raise _header_error(self.header, self.profile, where=f"the keys of row {first_number}")
        self._items = chain([(first_number, first_item)], items)
        self._header_cache: dict[tuple[str, ...], HeaderMatch] = {}

    def _array_items(self) -> Iterator[tuple[int, object]]:
        row_number = 0
        try:
            for row_number, item in enumerate(ijson.items(self._binary, "item", use_float=True), start=1):
                yield row_number, item
        except ijson.JSONError as exc:
            raise ExtractFormatError(f"malformed JSON after row {row_number} ({type(exc).__name__})") from None

    def _ndjson_items(self) -> Iterator[tuple[int, object]]:
        self._text = io.TextIOWrapper(self._binary, encoding="utf-8", newline="")
        try:
            for line_number, line in enumerate(_bounded_lines(self._text), start=1):
                if not line.strip():
                    continue
                try:
                    yield line_number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ExtractFormatError(
                        f"line {line_number} is not a complete JSON object ({exc.msg}); "
                        "expected an array of objects or one object per line (NDJSON)"
                    ) from None
        except UnicodeDecodeError:
            raise ExtractFormatError("the JSON file is not valid UTF-8") from None

    def _header_for(self, item: object, row_number: int) -> HeaderMatch:
        if not isinstance(item, dict):
            raise ExtractFormatError(f"row {row_number} is not a JSON object")
        return self.profile.match_headers(list(item))

    def _rows(self) -> Iterator[NumberedRow]:
        try:
            for row_number, item in self._items:
                if not isinstance(item, dict):
                    raise ExtractFormatError(f"row {row_number} is not a JSON object")
                keys = tuple(item)
                header = self._header_cache.get(keys)
                if header is None:
                    header = self._header_for(item, row_number)
                    if len(self._header_cache) < self._HEADER_CACHE_LIMIT:
                        self._header_cache[keys] = header
                yield row_number, self._map_row(list(item.values()), header)
        finally:
            self.close()



# --- header search, shared by CSV and XLSX --------------------------------------------------------


class _HeaderNotFound(Exception):
    def __init__(self, error: ExtractFormatError, best_score: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.best_score = best_score


def find_header_row(rows: Sequence[Sequence[object]], profile: ColumnProfile) -> tuple[int, HeaderMatch]:
    """Index of the first row that, read as a header, names every required column.

    A merged multi-row header leaves the value in the top cell of a vertical merge and blanks
    below it, so each blank header cell borrows the nearest value above it in the same column
    ("CPR-nummer" merged over rows 1-2 next to "Datoer" split into "Overgangsdato" and
    "Seneste samtale" in row 2 reads as one complete header in row 2).
    """
    best: tuple[int, HeaderMatch] | None = None
    carried: list[object] = []
    for index, row in enumerate(rows):
        width = max(len(row), len(carried))
        labels = [
            row[column]
            if column < len(row) and not is_blank(row[column])
            else (carried[column] if column < len(carried) else None)
            for column in range(width)
        ]
        match = profile.match_headers(labels)
        if not match.missing_required:
            if match.duplicated:
                raise _header_error(match, profile, where=f"row {index + 1}")
            return index, match
        if best is None or match.matched_count > best[1].matched_count:
            best = (index, match)
        carried = labels
    # Fewer than two recognised headers: probably no header row at all, and the "headers" are
    # citizens' data, which must not be echoed back.
    if best is None or best[1].matched_count < 2:
        expected = ", ".join(f'"{profile.expected_header(column)}"' for column in profile.required)
        raise _HeaderNotFound(
            ExtractFormatError(
                f"no header row found in the first {HEADER_SEARCH_ROWS} rows; expected headers "
                f"such as {expected} (column profile {profile.reference!r})"
            ),
            best_score=best[1].matched_count if best else 0,
        )
    index, match = best
    raise _HeaderNotFound(_header_error(match, profile, where=f"row {index + 1}"), best_score=match.matched_count)


def _header_error(match: HeaderMatch, profile: ColumnProfile, *, where: str) -> ExtractFormatError:
    problems = []
    if match.missing_required:
        missing = ", ".join(
            f'{column.value} (e.g. "{profile.expected_header(column)}")' for column in match.missing_required
        )
        problems.append(f"missing required columns: {missing}")
    for column, headers in match.duplicated.items():
        problems.append(f"several headers mean {column.value}: {describe_headers(list(headers))}")
    message = (
        f"{'; '.join(problems)}. Headers found in {where}: {describe_headers(list(match.headers))} "
        f"(column profile {profile.reference!r})"
    )
    if not match.missing_required:
        return ExtractFormatError(message)
    return MissingColumnsError(message, [missing_column_advice(profile, column, match.headers) for column in match.missing_required])


def missing_column_advice(profile: ColumnProfile, column: Kolonne, headers: Sequence[str]) -> dict:
    """For a 422: the headers found that come closest to ``column`` and the two ways to map one,
    ready to paste (a one-off ``column_map`` with the upload, or registering a profile)."""
    closest = profile.closest_headers(column, headers)
    header = closest[0] if closest else f"<the file's header for {column.value}>"
    base = profile.base or profile.name
    return {
        "column": column.value,
        "known_headers": [column.value, *profile.aliases.get(column, ())],
        "closest_headers": closest,
        "fix": {
            "column_map": json.dumps({**profile.column_map, column.value: header}, ensure_ascii=False),
            "register_profile": {
                "method": "POST",
                "path": "/profiles",
                "body": {"name": f"{base}-local", "base": base, "columns": {column.value: [header]}},
            },
            "explanation": (
                f"add the query parameter column_map={json.dumps({column.value: header}, ensure_ascii=False)} to this "
                f"upload, or register a profile once (POST /profiles with the body above) and upload with "
                f"profile={base}-local"
            ),
        },
    }


# --- sources --------------------------------------------------------------------------------------


def _open_binary(source: Source) -> tuple[BinaryIO, bool]:
    if isinstance(source, (str, os.PathLike)):
        try:
            return open(source, "rb"), True  # closed by the reader
        except IsADirectoryError:
            raise ExtractFormatError("the path is a directory, not an extract file") from None
    if not (hasattr(source, "read") and hasattr(source, "seek") and source.seekable()):
        raise TypeError("an extract stream must be a seekable binary file object")
    return source, False


def _peek(binary: BinaryIO, size: int) -> bytes:
    start = binary.tell()
    head = binary.read(size)
    binary.seek(start)
    if isinstance(head, str):
        raise TypeError("an extract stream must be opened in binary mode")
    return head


def _format_from_head(head: bytes) -> ExtractFormat:
    if head.startswith(_ZIP_MAGIC):
        return ExtractFormat.XLSX
    if head.startswith(_OLE2_MAGIC):
        raise ExtractFormatError("the file is an old Excel 97-2003 (.xls) workbook; save it as .xlsx or CSV")
    text_start = head.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if text_start in (b"[", b"{"):
        return ExtractFormat.JSON
    return ExtractFormat.CSV


__all__ = [
    "CSV_DELIMITERS",
    "EXTRA_FIELDS_KEY",
    "HEADER_SEARCH_ROWS",
    "CsvExtractReader",
    "ExtractFormat",
    "ExtractReader",
    "JsonExtractReader",
    "Kolonne",
    "NumberedRow",
    "Row",
    "Source",
    "XlsxExtractReader",
    "detect_format",
    "detect_text_encoding",
    "find_header_row",
    "iter_extract_rows",
    "open_extract",
]
