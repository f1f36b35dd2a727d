from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from consentinel.streams.worker.gctune import OLDER_EVERY, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_freezes_start_up_and_raises_the_threshold() -> None:
    gc.unfreeze()
    kept = [[] for _ in range(10)]  # what start-up allocated and keeps (tracked objects)
    assert tune_gc(50_000) == (50_000, OLDER_EVERY, OLDER_EVERY)
    assert gc.get_threshold() == (50_000, OLDER_EVERY, OLDER_EVERY)
    assert gc.get_freeze_count() >= len(kept)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_zero_leaves_the_collector_alone() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    assert tune_gc(0) == (700, 10, 10)
    assert gc.get_freeze_count() == 0
