"""Reading import files: CSV (header row) and JSONL, one record at a time.

Each record comes with its number (1-based, data records only: the checkpoint unit), the
physical line it ends on (for people), and either the row (a mapping) or the
``InvalidInput`` that explains why the line cannot be read, plus the bytes to seal into a
dead letter and the canonical content its event ids derive from.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput

FORMATS = ("csv", "jsonl")


@dataclass(frozen=True, slots=True)
class FileRecord:
    number: int  # 1-based record number (header and blank lines excluded)
    line: int  # physical line the record ends on
    row: Mapping[str, Any] | None
    error: InvalidInput | None
    raw: bytes  # what a dead letter seals (the record as JSON, or the raw line)
    content: bytes  # canonical content, for deterministic ids


def guess_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "csv"


def count_records(path: Path, fmt: str) -> int:
    """A fast estimate of the number of records (lines minus the CSV header)."""
    lines = 0
    last = b"\n"
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    return max(0, lines - (1 if fmt == "csv" else 0))


def read_records(path: Path, fmt: str, delimiter: str = ",") -> Iterator[FileRecord]:
    if fmt == "jsonl":
        yield from _jsonl(path)
    else:
        yield from _csv(path, delimiter)


def _jsonl(path: Path) -> Iterator[FileRecord]:
    number = 0
    with path.open("rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            number += 1
            try:
                obj = codec.loads(text)
                if not isinstance(obj, dict):
                    raise InvalidInput("not_an_object", "the line is JSON but not an object")
            except InvalidInput as exc:
                yield FileRecord(number, line_no, None, exc, text, text)
                continue
            yield FileRecord(number, line_no, obj, None, text, text)


def _csv(path: Path, delimiter: str) -> Iterator[FileRecord]:
    csv.field_size_limit(min(sys.maxsize, 1 << 24))
    with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error:
            raise InvalidInput("bad_csv_header", "the CSV header line cannot be read") from None
        header = [h.strip().lstrip("\ufeff") for h in header]
        if not any(header) or len(set(header)) != len(header):
            raise InvalidInput(
                "bad_csv_header", "the CSV header must name every column once (no duplicates)"
            )
        number = 0
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number += 1
                err = InvalidInput("bad_csv_line", f"the CSV line cannot be read ({exc})")
                yield FileRecord(number, reader.line_num, None, err, b"", b"")
                continue
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            number += 1
            if len(values) != len(header):
                raw = _csv_line(values, delimiter)
                err = InvalidInput(
                    "bad_csv_columns",
                    f"the line has {len(values)} fields, the header {len(header)}",
                )
                yield FileRecord(number, reader.line_num, None, err, raw, raw)
                continue
            row = dict(zip(header, values, strict=True))
            content = codec.dumps(row)
            yield FileRecord(number, reader.line_num, row, None, content, content)


def _csv_line(values: list[str], delimiter: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerow(values)
    return out.getvalue().encode("utf-8", "replace")
