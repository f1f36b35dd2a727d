"""The ingest spool's entry format (``spool``): header, sealed body, check.

    magic "CSP1" | body length u32 | crc32 u32 | appended at (epoch ms) u64 | records u32
    body: the records (topic, key, value; length-prefixed), AES-256-GCM sealed
          (``sealing.Sealer``, context "consentinel/spool/v1"), base64

The crc covers the appended time, the count and the body, so a torn or overwritten
entry is detected without the key; the seal detects anything else.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.sealing import Sealer

Record = tuple[str, bytes, bytes]  # topic, key, value
MAGIC = b"CSP1"
HEAD = struct.Struct(">4sIIQI")
_REC = struct.Struct(">HII")
CONTEXT = "consentinel/spool/v1"
SEGMENT_BYTES = 16 * 1024 * 1024


def valid(crc: int, appended_ms: int, count: int, body: bytes) -> bool:
    """Whether an entry read back is the one written (not torn, not overwritten)."""
    return zlib.crc32(struct.pack(">QI", appended_ms, count) + body) == crc


def encode(records: Sequence[Record], sealer: Sealer, appended_ms: int) -> bytes:
    """One entry as it is written: header and sealed body."""
    parts: list[bytes] = []
    for topic, key, value in records:
        t = topic.encode("utf-8")
        parts += (_REC.pack(len(t), len(key), len(value)), t, key, value)
    body = sealer.seal(b"".join(parts), CONTEXT).encode("ascii")
    crc = zlib.crc32(struct.pack(">QI", appended_ms, len(records)) + body)
    return HEAD.pack(MAGIC, len(body), crc, appended_ms, len(records)) + body


def decode(body: bytes, sealer: Sealer) -> list[Record]:
    """The records of an entry's sealed body (``InvalidInput`` if it does not open)."""
    try:
        plain = sealer.open_(body.decode("ascii"), CONTEXT)
    except Exception as exc:  # InvalidTag, bad base64: not ours, or another pepper's
        raise InvalidInput(
            "spool_unreadable", f"a spool entry does not open ({type(exc).__name__})"
        ) from None
    out: list[Record] = []
    at = 0
    while at < len(plain):
        tl, kl, vl = _REC.unpack_from(plain, at)
        at += _REC.size
        topic = plain[at : at + tl].decode("utf-8")
        at += tl
        key = plain[at : at + kl]
        at += kl
        out.append((topic, key, plain[at : at + vl]))
        at += vl
    return out
