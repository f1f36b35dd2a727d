"""A progress line on stderr: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    def __init__(
        self, total: int, label: str, stream: TextIO | None = None, start_at: int = 0
    ) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.start_at = start_at
        self.done = start_at
        self._last = 0.0
        self._printed = -1
        self._interval = 0.2 if self.tty else 5.0

    def update(self, done: int, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        self._printed = done
        elapsed = max(now - self.started, 1e-6)
        rate = (done - self.start_at) / elapsed
        left = max(self.total - done, 0)
        eta = _duration(left / rate) if rate > 0 else "?"
        pct = min(100.0, 100.0 * done / self.total)
        figures = f"{done:,}/{self.total:,} lines {pct:5.1f}% {rate:,.0f}/s ETA {eta}"
        if self.tty:
            width = 24
            filled = int(width * pct / 100)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {figures}\x1b[K")
        else:
            self.stream.write(f"{self.label}: {figures}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self._printed != self.done:
            self.update(self.done, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
