"""Message keys and the partitioner every producer of ours must agree on.

Usage and consent are co-partitioned: the same key bytes (the subject key, UTF-8), the
same partition count, and murmur2 (the default of Java, aiokafka and kafka-python).
``partition_for`` is the same function, so tests and tools can predict placement.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence


def subject_message_key(subject_key: str) -> bytes:
    """The Kafka key of usage, consent and verdict records."""
    return subject_key.encode("ascii")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as an unsigned 32-bit int (as kafka-python).

    The four-byte words are read with one ``struct`` call rather than byte by byte: the
    same function as Kafka's ``Utils.murmur2``, about twice as fast in CPython. Many keys
    at once: ``partitions_for``.
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
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# -- many keys at once -------------------------------------------------------------------

_M = 0x5BD1E995
_SEED = 0x9747B28C
_LANE_LOW32 = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_LANE_ONE = b"\x01\x00\x00\x00\x00\x00\x00\x00"
#: below this many keys of one length, the scalar function is cheaper
MIN_VECTOR = 8


def partitions_for(keys: Sequence[bytes], n: int) -> list[int]:
    """``[partition_for(key, n) for key in keys]``, computed together.

    Kafka's murmur2 is a chain of 32-bit multiplications, slow in CPython one word at a
    time (about 6 us a 64-byte key, more than the rest of producing a record or of checking
    where a record arrived). Here the keys of one length are computed together: every
    32-bit word sits in a 64-bit lane of one big integer, so one multiplication and one
    mask mix all words of all keys (a product of two 32-bit numbers fits its lane; the mask
    keeps its low 32 bits, as the ``& 0xFFFFFFFF`` of the scalar form); then one lane per
    key carries the chain, word column by column. About 0.8 us a key for 1,000 keys. Few
    keys go the scalar way, which is cheaper for them."""
    if len(keys) < MIN_VECTOR:
        return [partition_for(key, n) for key in keys]
    by_length: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(i)
    out = [0] * len(keys)
    for length, positions in by_length.items():
        group = [keys[i] for i in positions]
        if length < 4 or len(group) < MIN_VECTOR:
            hashes = [partition_for(key, n) for key in group]
        else:
            hashes = [(h & 0x7FFFFFFF) % n for h in _murmur2_same_length(group, length)]
        for i, p in zip(positions, hashes, strict=True):
            out[i] = p
    return out


def _lanes(values: Sequence[int]) -> int:
    """Unsigned ints (< 2**32) as the 64-bit lanes of one integer, first value lowest."""
    return int.from_bytes(struct.pack(f"<{len(values)}Q", *values), "little")


def _unlanes(big: int, count: int) -> tuple[int, ...]:
    return struct.unpack(f"<{count}Q", big.to_bytes(count * 8, "little"))


def _murmur2_same_length(keys: list[bytes], length: int) -> tuple[int, ...]:
    """Kafka's murmur2 (unsigned 32-bit) of keys that all have ``length`` bytes (>= 4)."""
    width = len(keys)
    n4 = length >> 2
    words = struct.unpack(f"<{width * n4}I", b"".join(key[: n4 * 4] for key in keys))
    mask_all = int.from_bytes(_LANE_LOW32 * (width * n4), "little")
    k = _lanes(words)  # key-major: key j's word i is lane j * n4 + i
    k = (k * _M) & mask_all
    k ^= (k >> 24) & mask_all
    k = (k * _M) & mask_all
    mixed = _unlanes(k, width * n4)
    mask = int.from_bytes(_LANE_LOW32 * width, "little")
    h = ((_SEED ^ length) & 0xFFFFFFFF) * int.from_bytes(_LANE_ONE * width, "little")
    for i in range(n4):
        h = ((h * _M) & mask) ^ _lanes(mixed[i::n4])
    extra = length & 3
    if extra:
        tail = length & ~3
        tails = [
            (key[tail + 2] << 16 if extra == 3 else 0)
            | (key[tail + 1] << 8 if extra >= 2 else 0)
            | key[tail]
            for key in keys
        ]
        h = ((h ^ _lanes(tails)) * _M) & mask
    h ^= (h >> 13) & mask
    h = (h * _M) & mask
    h ^= (h >> 15) & mask
    return _unlanes(h, width)
