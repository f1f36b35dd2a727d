"""CSV that a spreadsheet cannot run: every text cell that starts like a formula is
neutralized (OWASP "CSV Injection"). The one CSV writer of every export (the console's
evidence, the registry's records of processing)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: First characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection"),
#: plus the fullwidth forms some spreadsheets fold into them, and white space before them.
FORMULA_STARTS = frozenset("=+-@\t\r\n \uff1d\uff0b\uff0d\uff20")


def cell(value: Any) -> Any:
    """A CSV cell; text starting like a formula gets a leading ``'`` (OWASP), so ``-1+1``
    shows as text and never runs. Numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = "; ".join(map(str, value))
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def csv_text(fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header and one line per row (CRLF, as RFC 4180), every cell through ``cell``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: cell(v) for k, v in row.items()})
    return out.getvalue()
