"""The local table stores across restarts (``worker.stores``): no broker, no Faust."""

from __future__ import annotations

from pathlib import Path

from consentinel.streams.worker import stores

TABLES = ("ledger", "holds", "stats")


def _stores(datadir: Path) -> list[Path]:
    made = []
    for name in ("ledger-0.db", "ledger-1.db", "holds-0.db", "stats-3.db"):
        path = datadir / "consentinel-data" / "v1" / "tables" / name
        path.mkdir(parents=True)
        (path / "000001.log").write_bytes(b"state")
        made.append(path)
    return made


def test_after_a_clean_stop_the_stores_are_kept(tmp_path: Path) -> None:
    made = _stores(tmp_path)
    stores.mark_clean(tmp_path)
    assert stores.open_stores(tmp_path, TABLES) == []
    assert all(p.exists() for p in made)
    assert not (tmp_path / stores.MARK).exists(), "a crash from now on leaves no mark"


def test_after_a_kill_the_table_stores_are_removed_and_nothing_else(tmp_path: Path) -> None:
    made = _stores(tmp_path)
    other = tmp_path / "consentinel-data" / "v1" / "other.db"
    other.mkdir()
    removed = stores.open_stores(tmp_path, TABLES)
    assert sorted(removed) == sorted(made)
    assert not any(p.exists() for p in made) and other.exists()


def test_a_first_start_has_nothing_to_remove(tmp_path: Path) -> None:
    assert stores.open_stores(tmp_path, TABLES) == []
