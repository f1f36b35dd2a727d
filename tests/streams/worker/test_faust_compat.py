"""The Faust workarounds that need no broker, run on Faust's own code."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from consentinel.streams.worker import faust_compat
from faust.transport.producer import ProducerBuffer


class Buffer:
    """What ``ProducerBuffer.flush_atmost`` reads of its buffer, fed by a sender that sends
    one record every ``every_s`` (a full accumulator, a slow broker); Faust's own
    ``flush_atmost`` runs on it."""

    flush_atmost = ProducerBuffer.flush_atmost

    def __init__(self, records: int, every_s: float) -> None:
        self.size = records
        self.state = "running"
        self.message_sent = asyncio.Event()
        self._every_s = every_s
        self.sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        while self.size:
            await asyncio.sleep(self._every_s)
            self.size -= 1
            self.message_sent.set()


def _faust_flush(buffer: Any) -> Any:
    return ProducerBuffer.flush_atmost(buffer, None)  # Faust's ``flush``, unpatched


async def test_faust_flush_returns_with_records_still_in_the_buffer() -> None:
    buffer = Buffer(3, every_s=0.15)  # slower than Faust's 0.1 s wait
    await _faust_flush(buffer)
    assert buffer.size == 3  # the commit would go ahead with the changelog unsent
    buffer.sender.cancel()


async def test_a_commit_waits_until_every_changelog_record_is_sent() -> None:
    faust_compat.durable_commits()
    buffer = Buffer(3, every_s=0.15)
    await ProducerBuffer.flush(buffer)  # type: ignore[arg-type]
    assert buffer.size == 0


async def test_a_buffer_that_does_not_drain_fails_the_commit_loudly(monkeypatch) -> None:
    faust_compat.durable_commits()
    monkeypatch.setattr(faust_compat, "FLUSH_LIMIT_S", 0.0)
    buffer = Buffer(2, every_s=3600)
    with pytest.raises(faust_compat.ChangelogNotWritten, match="not committed"):
        await ProducerBuffer.flush(buffer)  # type: ignore[arg-type]
    buffer.sender.cancel()
