"""Message keys and the partitioner every producer of ours must agree on.

Usage and consent are co-partitioned: the same key bytes (the subject key, UTF-8), the
same partition count, and murmur2 (the default of Java, aiokafka and kafka-python).
``partition_for`` is the same function, so tests and tools can predict placement.
"""

from __future__ import annotations

import functools
import struct


def subject_message_key(subject_key: str) -> bytes:
    """The Kafka key of usage, consent and verdict records."""
    return subject_key.encode("ascii")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as an unsigned 32-bit int (as kafka-python).

    The four-byte words are read with one ``struct`` call rather than byte by byte: the
    same function as Kafka's ``Utils.murmur2``, about twice as fast in CPython (it runs
    once per produced record, and once per subject the checker sees first).
    """
    length = len(data)
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    h = (0x9747B28C ^ length) & mask
    n4 = length >> 2
    if n4:
        for k in _words(n4).unpack_from(data):
            k = (k * m) & mask
            # (h*m mod 2^32) ^ (k'*m mod 2^32) == ((h*m) ^ (k'*m)) mod 2^32: one mask, not two
            h = ((h * m) ^ ((k ^ (k >> 24)) * m)) & mask
    extra = length & 3
    if extra:
        tail = length & ~3
        if extra == 3:
            h ^= data[tail + 2] << 16
        if extra >= 2:
            h ^= data[tail + 1] << 8
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


@functools.lru_cache(maxsize=64)
def _words(n: int) -> struct.Struct:
    """The little-endian layout of ``n`` unsigned 32-bit words."""
    return struct.Struct(f"<{n}I")


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``."""
    return (_murmur2_of_recent(key) & 0x7FFFFFFF) % partitions


#: ``murmur2`` of the latest keys (a pure function: the same value): the checker hashes a
#: cold subject's key to check the partition its record arrived on, then again for the
#: verdict it sends under that key in the same batch, at about 6 us a 64-byte key. A batch
#: holds at most 1,000 records; the entries take about 1 MiB.
_murmur2_of_recent = functools.lru_cache(maxsize=8192)(murmur2)
