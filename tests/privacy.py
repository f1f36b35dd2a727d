"""What a raw address looks like, for scans of topics, logs, pages and exports."""

from __future__ import annotations

import re

EMAIL = re.compile(rb"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE = re.compile(rb"(?<![\w*])\+?\d[\d .\-()]{7,}\d(?![\w*])")
E164 = re.compile(rb"\+\d{8,15}\b")


def raw_addresses(data: bytes) -> list[bytes]:
    """E-mail addresses and E.164 numbers found in ``data`` (hints like a***@e***.org are not)."""
    return EMAIL.findall(data) + E164.findall(data)
