"""The checker's job written plainly with Quix Streams: a peer for ``make bench``.

Consent and usage are read together (the two co-partitioned topics concatenated into one
dataframe), a state store keyed by subject holds each subject's latest consent, and one
verdict per use goes to the verdicts topic given. Quix Streams is installed in the bench's
own environment (``make bench-env``), never in consentinel's dependencies.

    python quix_peer.py --bootstrap 127.0.0.1:9092 --group G --consent T1 --usage T2
                        --verdicts T3 --state-dir DIR

Runs until SIGTERM (Quix Streams stops cleanly on it, committing what was processed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import peer_job
from consentinel.streams.events import codec
from quixstreams import Application, State


def judge(value: bytes, state: State) -> bytes | None:
    record: dict[str, Any] = codec.loads(value)
    if peer_job.is_consent(record):
        state.set("consent", peer_job.consent_state(record))
        return None
    return peer_job.verdict(record, peer_job.decide(record, state.get("consent")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("bootstrap", "group", "consent", "usage", "verdicts", "state-dir"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        commit_interval=1.0,
        loglevel="WARNING",
    )

    def topic(name: str) -> Any:
        return app.topic(name, key_deserializer="bytes", value_deserializer="bytes")

    verdicts = app.topic(args.verdicts, key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(topic(args.consent)).concat(app.dataframe(topic(args.usage)))
    sdf = sdf.apply(judge, stateful=True).filter(lambda v: v is not None)
    sdf.to_topic(verdicts)
    app.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
