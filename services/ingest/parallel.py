"""Feeding a delivery's rows to the preparation code, in blocks, on every core.

CSV (the national extracts) goes as raw byte blocks cut at record boundaries: the service only
finds line breaks (``bytes.rfind``, no per-row work) and each worker process decodes, parses,
validates, classifies and pseudonymises its block (``preparation.prepare_csv_block``). Results
come back in file order, so duplicates, progress and events keep row order.

What the block path cannot take (XLSX, JSON, UTF-16, old Mac line breaks) is read row by row
as before and prepared in a thread (``preparation.prepare_rows``). Small files use a thread too:
starting worker processes costs more than it saves there.

Memory stays flat: at most ``workers + 1`` blocks are in flight.
"""

from __future__ import annotations

import asyncio
import csv
import io
import multiprocessing
import os
import re
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path

from services.ingest.domain.errors import ExtractFormatError
from services.ingest.domain.profiles import ColumnProfile
from services.ingest.domain.readers import MAX_LINE_CHARS, CsvExtractReader, NumberedRow, open_extract
from services.ingest.preparation import (
    FAST_COLUMNS,
    CsvLayout,
    PreparationSpec,
    PreparedBlock,
    _count_lines,
    prepare_csv_block,
    prepare_rows,
)
from shared.infra import exit_with_parent

_ASCII_COMPATIBLE = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "cp1252": "cp1252", "latin-1": "latin-1"}
_NEWLINE = re.compile(rb"\r\n|\r|\n")
_MAX_OPEN_QUOTE_BYTES = 64 * 1024 * 1024  # a quoted field open for longer is a broken file


@dataclass(frozen=True)
class ExtractFile:
    """An uploaded extract on disk, read by the block path when it can be."""

    path: str
    # Resolved in the service process (built-in, registered or with a one-off mapping); the
    # worker processes get only the column positions it found (``CsvLayout``), so a profile
    # registered a moment ago needs no restart anywhere.
    profile: ColumnProfile | str


@dataclass(frozen=True)
class BlockSettings:
    block_bytes: int
    block_rows: int
    workers: int  # 0 or 1: prepare in a thread
    parallel_min_bytes: int


def worker_count(configured: int) -> int:
    if configured > 0:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


async def prepared_blocks(
    source: ExtractFile | Iterator[NumberedRow],
    spec: PreparationSpec,
    settings: BlockSettings,
    on_header: Callable[[int], None] | None = None,
) -> AsyncIterator[PreparedBlock]:
    """The delivery's prepared blocks in row order; ``on_header`` learns the file's header row
    number (the last one of a multi-row header; 0 for JSON), before the first block."""
    loop = asyncio.get_running_loop()
    if isinstance(source, ExtractFile):
        reader = await loop.run_in_executor(None, open_extract, source.path, source.profile)
        if on_header is not None:
            on_header(reader.header_row_number)
        layout = _csv_layout(reader) if isinstance(reader, CsvExtractReader) else None
        blocks = None
        if layout is not None:
            header_row_number = reader.header_row_number
            reader.close()
            blocks = _csv_blocks(source.path, layout, header_row_number, settings.block_bytes, settings.block_rows)
            first = await loop.run_in_executor(None, next, blocks, _NO_BLOCKS)
            if first is _NOT_SPLITTABLE:
                blocks = None
                reader = await loop.run_in_executor(None, open_extract, source.path, source.profile)
        if blocks is not None:
            size = Path(source.path).stat().st_size
            workers = settings.workers if size >= settings.parallel_min_bytes else 0
            async for block in _run_csv_blocks(first, blocks, spec, layout, workers):
                yield block
            return
        rows: Iterator[NumberedRow] = iter(reader)
    else:
        rows = source
    async for block in _run_rows(rows, spec, settings.block_rows):
        yield block


_NO_BLOCKS = object()
_NOT_SPLITTABLE = object()


# One pool per service process, kept between deliveries: a worker's imports take seconds.
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def warm_pool(configured_workers: int) -> None:
    """Start the worker processes now (in the background), so a delivery need not wait."""
    workers = worker_count(configured_workers)
    if workers > 1:
        pool = _get_pool(workers)
        for _ in range(workers):
            pool.submit(_ready)  # a pool starts a process per task it cannot give to an idle one


def shutdown_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def _get_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    if _pool is not None and (_pool_size != workers or getattr(_pool, "_broken", False)):
        shutdown_pool()
    if _pool is None:
        # spawn, not fork: the service has threads (asyncio's executor, the Kafka client).
        _pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_warm_up)
        _pool_size = workers
    return _pool


async def _run_csv_blocks(first, blocks: Iterator, spec: PreparationSpec, layout: CsvLayout, workers: int):
    loop = asyncio.get_running_loop()
    executor: Executor | None = _get_pool(workers) if workers > 1 else None
    pending: deque[asyncio.Future] = deque()
    window = max(2, workers + 1)
    next_block = first
    try:
        while True:
            while next_block is not _NO_BLOCKS and len(pending) < window:
                data, first_line = next_block
                pending.append(loop.run_in_executor(executor, prepare_csv_block, spec, layout, data, first_line))
                next_block = await loop.run_in_executor(None, next, blocks, _NO_BLOCKS)
            if not pending:
                return
            yield await pending.popleft()
    finally:
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def _run_rows(rows: Iterator[NumberedRow], spec: PreparationSpec, block_rows: int):
    loop = asyncio.get_running_loop()
    prepare = partial(prepare_rows, spec)
    # The next block is read and prepared in a thread while this one goes to the database.
    pending = loop.run_in_executor(None, lambda: prepare(islice(rows, block_rows)))
    try:
        while (block := await pending).rows_read:  # a reader yields no blank rows: 0 means the end
            pending = loop.run_in_executor(None, lambda: prepare(islice(rows, block_rows)))
            yield block
    finally:
        if not pending.done():  # an error left the thread reading: let it finish first
            await asyncio.wait([pending])


def _ready() -> None:
    pass


def _warm_up() -> None:
    """In a new worker: follow the service if it dies (a killed service must not leave idle
    workers behind), and import the heavy modules before the first block arrives."""
    exit_with_parent()
    import services.ingest.preparation  # noqa: F401


# --- cutting a CSV file into blocks ---------------------------------------------------------------


def _csv_layout(reader: CsvExtractReader) -> CsvLayout | None:
    encoding = _ASCII_COMPATIBLE.get(reader.encoding)
    if encoding is None:
        return None
    header = reader.header
    index = {column.value: position for column, position in header.column_index.items()}
    return CsvLayout(
        encoding=encoding,
        encoding_name=reader.encoding,
        delimiter=reader.delimiter,
        width=header.width,
        column_index=tuple(index.items()),
        fast_positions=tuple(index.get(column.value, -1) for column in FAST_COLUMNS),
    )


def _csv_blocks(path: str, layout: CsvLayout, header_row_number: int, block_bytes: int, block_rows: int):
    """Yield ``(bytes, first line number)`` blocks of whole records after the header; the
    first item is ``_NOT_SPLITTABLE`` when the file must be read row by row instead."""
    with open(path, "rb") as file:
        pending = file.read(max(block_bytes, 1024 * 1024))
        eof = not pending
        position = 3 if layout.encoding_name == "utf-8-sig" and pending.startswith(b"\xef\xbb\xbf") else 0
        if pending.count(b"\r") != pending.count(b"\r\n"):  # lone CR line breaks: row by row
            yield _NOT_SPLITTABLE
            return
        for _ in range(header_row_number):
            match = _NEWLINE.search(pending, position)
            if match is None:
                return  # the header is the whole file
            position = match.end()
        if position >= len(pending) - 1 and len(pending) >= block_bytes:
            yield _NOT_SPLITTABLE  # a header as long as a block: not worth a special case
            return
        pending = pending[position:]
        line = header_row_number + 1
        while pending or not eof:
            while not eof and len(pending) < block_bytes:
                chunk = file.read(block_bytes)
                if chunk:
                    pending += chunk
                else:
                    eof = True
            if not pending:
                return
            cut = _cut(pending, block_bytes, block_rows)
            while cut == 0:  # no line break within a block: a very long line
                if eof:
                    cut = len(pending)
                    break
                if len(pending) > 4 * MAX_LINE_CHARS:
                    raise ExtractFormatError(
                        f"line {line} is longer than {MAX_LINE_CHARS:,} characters: "
                        "not a CSV extract, or the line breaks are missing"
                    )
                chunk = file.read(block_bytes)
                if chunk:
                    pending += chunk
                else:
                    eof = True
                cut = pending.find(b"\n") + 1
            if cut < len(pending) and b'"' in pending[:cut]:
                # A quoted value may hold a line break: never cut inside one.
                step = max(1, block_bytes // 4)
                while cut < len(pending) and _ends_inside_quotes(pending[:cut], layout):
                    if cut > _MAX_OPEN_QUOTE_BYTES:
                        raise ExtractFormatError(f"line {line}: malformed CSV (a quoted value is never closed)")
                    while not eof and len(pending) < cut + step:
                        chunk = file.read(block_bytes)
                        if chunk:
                            pending += chunk
                        else:
                            eof = True
                    further = pending.find(b"\n", min(cut + step, len(pending)) - 1) + 1
                    while not further and not eof:
                        chunk = file.read(block_bytes)
                        if chunk:
                            pending += chunk
                        else:
                            eof = True
                        further = pending.find(b"\n", cut) + 1
                    cut = further or len(pending)
            block, pending = pending[:cut], pending[cut:]
            yield block, line
            line += _count_lines(block)


def _cut(data: bytes, block_bytes: int, block_rows: int) -> int:
    """Just after the last line break within the first ``block_bytes`` and ``block_rows`` lines."""
    cut = data.rfind(b"\n", 0, block_bytes) + 1
    if cut and data.count(b"\n", 0, cut) > block_rows:
        cut = 0
        for _ in range(block_rows):
            cut = data.index(b"\n", cut) + 1
    return cut


def _ends_inside_quotes(data: bytes, layout: CsvLayout) -> bool:
    """Whether the csv module, reading ``data`` from a record boundary, would still be inside a
    quoted value at its end (so the record goes on in the next line)."""
    text = data.decode(layout.encoding, errors="replace")
    exhausted = False

    def lines():
        nonlocal exhausted
        yield from io.StringIO(text, newline="")
        exhausted = True

    try:
        for _ in csv.reader(lines(), delimiter=layout.delimiter):
            if exhausted:  # a record was still open when the lines ran out
                return True
    except csv.Error:
        return False  # the worker reports it, with its line
    return False
