"""Topic prefixes of one bench run, and the deletion of every topic they name at its end.

Each section asks ``fresh_prefix`` for its prefix (``bench<6 hex>.``, ``benchso…``,
``benchin…``); the run remembers them, and ``delete_created`` removes every topic whose name
starts with one of them (records topics, changelogs, tick and peer topics alike), so the shared
development broker does not pile up topics run after run (as ``tests/conftest.py`` does for
the test suite).
"""

from __future__ import annotations

import uuid

_CREATED: list[str] = []


def fresh_prefix(stem: str = "bench") -> str:
    """A new prefix of this run, remembered for ``delete_created``."""
    prefix = f"{stem}{uuid.uuid4().hex[:6]}."
    _CREATED.append(prefix)
    return prefix


def delete_created(bootstrap: str) -> None:
    """Delete the topics of every prefix this run handed out. Best effort: a broker that does
    not answer is reported, never turned into a failed bench."""
    if not _CREATED:
        return
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=60_000)
    except Exception as exc:  # clean-up must not hide the figures printed before it
        print(f"\nbench topics not deleted: the broker did not answer ({exc})")
        return
    try:
        ours = sorted(t for t in admin.list_topics() if t.startswith(tuple(_CREATED)))
        for start in range(0, len(ours), 200):
            admin.delete_topics(ours[start : start + 200], timeout_ms=60_000)
        print(f"\ndeleted the {len(ours)} topics this bench run created")
        _CREATED.clear()
    except Exception as exc:
        print(f"\nsome bench topics not deleted ({exc}); left over, they slow the broker start")
    finally:
        admin.close()
