"""Import checkpoints: the last record whose events Kafka acknowledged.

One small JSON file per imported file version, under ``<home>/imports/``, keyed by a
hash of (absolute path, size, mtime): a changed file starts afresh. Written atomically
(temporary file, then rename) only after the acknowledgement, so a crash at any point
re-imports at most the batch in flight (same event ids).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consentinel.streams.events import codec


def file_key(path: Path) -> str:
    st = path.stat()
    text = f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def file_identity(path: Path, head: int = 64 * 1024) -> str:
    """What event ids derive from: a hash of the file's first bytes (stable on append)."""
    with path.open("rb") as fh:
        return hashlib.sha256(fh.read(head)).hexdigest()[:16]


@dataclass
class Checkpoint:
    path: Path
    record: int = 0
    done: bool = False
    taken: int = 0
    deadlettered: dict[str, int] = field(default_factory=dict)
    updated_at: float = 0.0

    @classmethod
    def load(cls, home: Path, source: Path) -> Checkpoint:
        where = home / "imports" / f"{file_key(source)}.json"
        try:
            data: dict[str, Any] = codec.loads(where.read_bytes())
        except (OSError, ValueError, Exception):
            return cls(where)
        return cls(
            where,
            record=int(data.get("record", 0)),
            done=bool(data.get("done", False)),
            taken=int(data.get("taken", 0)),
            deadlettered={str(k): int(v) for k, v in dict(data.get("deadlettered", {})).items()},
            updated_at=float(data.get("updated_at", 0.0)),
        )

    def save(self) -> None:
        self.updated_at = time.time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(
            codec.dumps(
                {
                    "record": self.record,
                    "done": self.done,
                    "taken": self.taken,
                    "deadlettered": self.deadlettered,
                    "updated_at": self.updated_at,
                }
            )
        )
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
