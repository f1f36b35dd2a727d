from __future__ import annotations

import gc
import itertools
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
def test_the_pacer_collects_half_as_often_after_each_collection_that_finds_nothing() -> None:
    """Each collection looks at every young object still alive: collecting every step
    cost 11-15 % of the worker's CPU at the ledger build, and found nothing. A step that
    does not collect still freezes."""
    gc.unfreeze()
    tune_gc(50_000)
    pacer = GcPacer(rss=lambda: 100, clock=lambda: 0.0, max_gap=8)
    collected_at: list[int] = []
    for i in range(60):
        before = pacer.young_collections
        kept = [[j] for j in range(10)]  # young, alive: frozen by every step
        pacer.step()
        assert gc.get_count()[1:] == (0, 0)
        assert all(gc.is_tracked(k) for k in kept)
        if pacer.young_collections > before:
            collected_at.append(i)
    gaps = [b - a for a, b in itertools.pairwise(collected_at)]
    assert gaps[-6:] == [8] * 6  # at most ``max_gap`` steps apart
    assert gaps[:4] in ([1, 2, 4, 8], [2, 4, 8, 8])  # doubling (step 1 may find start-up garbage)


@pytest.mark.usefixtures("restore_gc")
def test_a_collection_that_finds_garbage_brings_the_pacer_back_to_every_step() -> None:
    gc.unfreeze()
    tune_gc(50_000)
    pacer = GcPacer(rss=lambda: 100, clock=lambda: 0.0, max_gap=8)
    for _ in range(40):
        pacer.step()
    assert pacer.gap == 8
    a, dead = cycle()
    del a  # garbage, young until the next step: the next collection finds it
    while dead() is not None and pacer.gap == 8:
        before = pacer.young_collections
        pacer.step()
        if pacer.young_collections == before:  # a step that did not collect froze it
            a, dead = cycle()
            del a
    assert dead() is None and pacer.gap == 1
    collections = pacer.young_collections
    pacer.step()
    assert pacer.young_collections == collections + 1  # the next step collects too


@pytest.mark.usefixtures("restore_gc")
def test_a_cycle_frozen_by_a_step_that_did_not_collect_is_freed_by_the_full_collection() -> None:
    gc.unfreeze()
    tune_gc(50_000)
    memory = [100]
    now = [0.0]
    pacer = GcPacer(full_every_s=60.0, rss=lambda: memory[0], clock=lambda: now[0], max_gap=8)
    for _ in range(40):
        pacer.step()
    assert pacer.gap == 8
    collections = pacer.young_collections
    a, dead = cycle()
    del a
    pacer.step()  # a step that does not collect: the garbage is frozen
    assert pacer.young_collections == collections and dead() is not None
    memory[0], now[0] = 200, 60.0
    pacer.step()
    assert dead() is None and pacer.full_collections == 1


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
