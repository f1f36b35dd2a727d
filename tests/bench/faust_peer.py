"""The checker's job written plainly as a Faust agent: a peer for ``make bench``.

One agent over the consent and usage topics (co-partitioned), one Table (subject key ->
latest consent, in RocksDB with its changelog), and per use one table lookup and one
verdict sent. Nothing batched, nothing tuned: what the Faust documentation teaches.

    python faust_peer.py --bootstrap 127.0.0.1:9092 --group G --consent T1 --usage T2
                         --verdicts T3 --state-dir DIR --partitions 6

Runs until SIGTERM (the Faust worker stops cleanly on it, committing what was processed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import faust
import peer_job
from consentinel.streams.events import codec


def build(args: argparse.Namespace) -> faust.App:
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="rocksdb://",
        datadir=args.state_dir,
        autodiscover=False,
        topic_partitions=int(args.partitions),
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
    )
    consents = app.Table(
        "consents",
        default=None,
        key_type=bytes,  # bytes: Faust's raw serializer; values are our codec's JSON
        value_type=bytes,
        partitions=int(args.partitions),
    )
    source = app.topic(args.consent, args.usage, key_serializer="raw", value_serializer="raw")
    verdicts = app.topic(args.verdicts, key_serializer="raw", value_serializer="raw")

    @app.agent(source)
    async def check(stream: Any) -> None:
        async for key, value in stream.items():
            record = codec.loads(value)
            if peer_job.is_consent(record):
                consents[key] = codec.dumps(peer_job.consent_state(record))
                continue
            raw = consents.get(key)
            state = codec.loads(raw) if raw is not None else None
            await verdicts.send(
                key=key, value=peer_job.verdict(record, peer_job.decide(record, state))
            )

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("bootstrap", "group", "consent", "usage", "verdicts", "state-dir", "partitions"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    app = build(args)
    faust.Worker(app, loglevel="warning").execute_from_commandline()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
