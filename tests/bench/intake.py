"""Micro-bench of the worker's intake alone: records/s from Faust's consumer to an ack, with
a processor that does nothing. Two ways, same topic, same run, alternated:

- ``stream``: Faust's per-event path, as the agent took records before
  (``Stream.noack_take(1000, within=0.05)`` then ``Stream.ack`` of each event);
- ``intake``: ``faust_compat.BatchIntake`` (records taken at the conductor, buffered per
  partition, taken per partition, acknowledged with the message's own ack).

Each round runs each way in a fresh process with a fresh consumer group over the same
preloaded topic; the figure is the records acked divided by the time from the first record
taken to the last one acked, and the process's CPU over that time.

    python tests/bench/intake.py --bootstrap 127.0.0.1:9692 --records 200000 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import benchtopics


def _preload(bootstrap: str, topic: str, partitions: int, records: int) -> None:
    from aiokafka import AIOKafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
        await producer.start()
        try:
            value = b"x" * 250  # about the size of a use
            pending = []
            for i in range(records):
                key = f"subject-{i % 20_000:06d}".encode()
                pending.append(await producer.send(topic, value, key=key))
                if len(pending) >= 10_000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
        finally:
            await producer.stop()

    asyncio.run(produce())


def _child(args: argparse.Namespace) -> None:
    """One way, one process: a Faust worker that acks ``--records`` records, then exits."""
    import logging

    import faust
    from consentinel.streams.worker import faust_compat

    app = faust.App(
        f"intakebench-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        autodiscover=False,
        processing_guarantee="at_least_once",
        stream_wait_empty=True,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
    )
    source = app.topic(args.topic, key_type=bytes, value_type=bytes)
    expected = args.records
    state: dict[str, Any] = {"n": 0, "t0": None, "c0": None}

    def started() -> None:
        if state["t0"] is None:
            state["t0"] = time.monotonic()
            state["c0"] = time.process_time()

    def done() -> None:
        wall = time.monotonic() - state["t0"]
        cpu = time.process_time() - state["c0"]
        print(f"RESULT {args.child} {state['n']} {wall:.3f} {cpu:.3f}", flush=True)
        os._exit(0)

    intake = faust_compat.BatchIntake(app, (args.topic,), 1000) if args.child == "intake" else None
    if intake is not None:
        intake.install()

    @app.agent(source, concurrency=1)
    async def agent(stream: Any) -> None:
        if intake is None:
            async for events in stream.noack_take(1000, within=0.05):
                started()
                for event in events:
                    await stream.ack(event)
                state["n"] += len(events)
                if state["n"] >= expected:
                    done()
        else:
            while True:
                batches = await intake.take()
                started()
                for messages in batches.values():
                    with faust_compat.current_event(faust_compat.PartitionEvent(messages[-1])):
                        pass  # the processor, doing nothing
                    for message in messages:
                        intake.ack(message)
                    state["n"] += len(messages)
                if state["n"] >= expected:
                    done()

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    faust_compat.quiet_worker(worker, lambda level: None)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("faust").setLevel(logging.WARNING)
    worker.execute_from_commandline()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("CONSENTINEL_BOOTSTRAP_SERVERS"))
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ways", default="stream,intake")
    parser.add_argument("--child", choices=("stream", "intake"))
    parser.add_argument("--topic")
    args = parser.parse_args()
    if not args.bootstrap:
        parser.error("--bootstrap or CONSENTINEL_BOOTSTRAP_SERVERS is required")
    if args.child:
        _child(args)
        return
    topic = benchtopics.fresh_prefix("benchintake") + "records"
    try:
        _preload(args.bootstrap, topic, args.partitions, args.records)
        print(f"{args.records} records on {args.partitions} partitions of {topic}")
        print(f"{'round':>5} {'way':>7} {'records/s':>10} {'CPU µs/record':>14}")
        for round_ in range(1, args.rounds + 1):
            for way in args.ways.split(","):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        way,
                        "--topic",
                        topic,
                        "--bootstrap",
                        args.bootstrap,
                        "--records",
                        str(args.records),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                lines = (out.stdout + out.stderr).splitlines()  # Faust's logging takes print
                line = next((x[x.index("RESULT") :] for x in lines if "RESULT" in x), None)
                if line is None:
                    print(f"{round_:>5} {way:>7} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
                    continue
                _, _, n, wall, cpu = line.split()
                rate = int(n) / float(wall)
                print(f"{round_:>5} {way:>7} {rate:>10,.0f} {1e6 * float(cpu) / int(n):>14.1f}")
    finally:
        benchtopics.delete_created(args.bootstrap)


if __name__ == "__main__":
    main()
