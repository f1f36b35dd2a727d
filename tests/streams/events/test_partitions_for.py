"""partitions_for is partition_for, key for key (co-partitioning depends on it)."""

from __future__ import annotations

import random

import pytest
from consentinel.streams.events.partitioning import (
    partition_for,
    partitions_for,
    subject_message_key,
)


@pytest.mark.parametrize("n", [1, 3, 6, 12, 100])
def test_same_partitions_as_partition_for_on_subject_keys(n: int) -> None:
    rng = random.Random(n)
    keys = [subject_message_key(f"{rng.getrandbits(256):064x}") for _ in range(500)]
    assert partitions_for(keys, n) == [partition_for(k, n) for k in keys]


def test_same_partitions_for_keys_of_every_length_mixed_in_one_call() -> None:
    rng = random.Random(7)
    keys = [
        rng.randbytes(rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 31, 64, 65, 66, 67]))
        for _ in range(3000)
    ]
    for n in (6, 7):
        assert partitions_for(keys, n) == [partition_for(k, n) for k in keys]
    assert partitions_for(keys[:3], 6) == [partition_for(k, 6) for k in keys[:3]]
    assert partitions_for([], 6) == []
