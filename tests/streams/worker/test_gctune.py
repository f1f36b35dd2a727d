from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from consentinel.streams.worker.gctune import NEVER, GcPacer, PauseWatch, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_freezes_start_up_and_leaves_the_older_generations_to_the_pacer() -> None:
    gc.unfreeze()
    kept = [[] for _ in range(10)]  # what start-up allocated and keeps (tracked objects)
    assert tune_gc(50_000) == (50_000, NEVER, NEVER)
    assert gc.get_threshold() == (50_000, NEVER, NEVER)
    assert gc.get_freeze_count() >= len(kept)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_zero_leaves_the_collector_alone() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    assert tune_gc(0) == (700, 10, 10)
    assert gc.get_freeze_count() == 0


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.mark.usefixtures("restore_gc")
def test_the_pacer_collects_young_garbage_and_freezes_what_survives() -> None:
    """Nothing the worker keeps is looked at twice: after a step every generation is empty
    (survivors frozen), and a young cycle of garbage is collected."""
    gc.unfreeze()
    tune_gc(50_000)
    pacer = GcPacer(rss=lambda: 100, clock=lambda: 0.0)
    frozen = gc.get_freeze_count()
    kept = [[i] for i in range(1000)]  # survives: records in flight, a cache
    a, dead = cycle()
    del a  # garbage, in a cycle: only the collector frees it
    assert dead() is not None
    pacer.step()
    assert dead() is None
    assert gc.get_freeze_count() >= frozen + len(kept)
    assert gc.get_count()[1:] == (0, 0)  # nothing left for an older generation to look at
    assert pacer.full_collections == 0


@pytest.mark.usefixtures("restore_gc")
def test_a_full_collection_only_once_the_memory_doubled() -> None:
    """Frozen objects are freed by reference counting, not cycles among them: those wait
    for a full collection, which runs when the memory has doubled since the last one, and
    not sooner than ``full_every_s`` after it (a warming worker doubles its memory fast)."""
    gc.unfreeze()
    tune_gc(50_000)
    memory = [100]
    now = [0.0]
    pacer = GcPacer(full_every_s=60.0, rss=lambda: memory[0], clock=lambda: now[0])
    a, dead = cycle()
    pacer.step()  # the cycle, alive, is frozen
    del a  # now garbage among frozen objects
    memory[0] = 199
    pacer.step()
    assert dead() is not None and pacer.full_collections == 0
    memory[0] = 200
    pacer.step()
    assert dead() is not None and pacer.full_collections == 0  # too soon after the start
    now[0] = 60.0
    pacer.step()
    assert dead() is None and pacer.full_collections == 1
    now[0] = 1000.0
    memory[0] = 399  # the base is now 200 (after that collection): none before 400
    pacer.step()
    assert pacer.full_collections == 1


def test_the_pause_watch_says_a_long_collection(caplog) -> None:
    watch = PauseWatch(long_pause_s=0.0)
    watch("start", {"generation": 1})
    watch("stop", {"generation": 1, "collected": 3})
    assert watch.count == [0, 1, 0] and watch.longest[1] >= 0.0
    assert "generation 1 stopped the worker" in caplog.text
