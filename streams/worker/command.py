"""``consentinel worker``: run the stream processors (consent ledger and usage checker).

Before Faust starts, the worker checks the topics (all present, consent and usage with
the partition count of CONSENTINEL_PARTITIONS, changelogs too) and creates its tick
topic; a mismatch stops it with what to do. Then it serves /metrics on
CONSENTINEL_METRICS_PORT, says what it listens on, and runs until SIGTERM or SIGINT,
which stop it cleanly (the record in hand finishes, offsets are committed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from consentinel.streams import topics_admin
from consentinel.streams.checker.ticks import TICK_TOPIC_CONFIG, tick_interval, tick_topic
from consentinel.streams.events import metrics, topics
from consentinel.streams.events.errors import FatalConfigError, RetriableError
from consentinel.streams.events.settings import Settings

log = logging.getLogger("consentinel.worker")

EX_UNAVAILABLE = 69
TABLES = ("ledger", "holds", "stats")


def prepare_topics(settings: Settings) -> None:
    """Check the topics the worker reads and writes; create its tick topic if missing."""
    from kafka.errors import TopicAlreadyExistsError

    with open(os.devnull, "w") as sink:
        problems = topics_admin.check(settings, out=sink)
    from consentinel.streams.worker.app import app_id

    changelogs = [f"{app_id(settings)}-{name}-changelog" for name in TABLES]
    tick = tick_topic(settings)
    usage = settings.topic(topics.USAGE)
    admin = topics_admin.admin_client(settings.bootstrap_servers)
    try:
        current = topics_admin.describe(admin, [usage, tick, *changelogs])
        if usage in current and current[usage].partitions != settings.partitions:
            problems.append(
                f"{usage} has {current[usage].partitions} partitions but CONSENTINEL_PARTITIONS="
                f"{settings.partitions}: set CONSENTINEL_PARTITIONS={current[usage].partitions} "
                f"(the tables must have as many partitions as consent and usage)"
            )
        for name in (tick, *changelogs):
            st = current.get(name)
            if st is not None and st.partitions != settings.partitions:
                problems.append(
                    f"{name} has {st.partitions} partitions, the worker needs "
                    f"{settings.partitions} (like consent and usage): stop every worker, delete "
                    f"{name} (a changelog is rebuilt from its source only if you also reset the "
                    f"group's offsets) and start again"
                )
        if problems:
            raise FatalConfigError(problems, "the Kafka topics for the worker")
        if tick not in current:
            try:
                admin.create_topics(
                    {
                        tick: {
                            "num_partitions": settings.partitions,
                            "replication_factor": 1,
                            "configs": dict(TICK_TOPIC_CONFIG),
                        }
                    }
                )
                log.info("created the tick topic %s (%d partitions)", tick, settings.partitions)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def _serve_metrics(settings: Settings) -> Any:
    from prometheus_client import start_http_server

    try:
        return start_http_server(
            settings.metrics_port, addr=settings.web_host, registry=metrics.REGISTRY
        )
    except OSError as exc:
        raise FatalConfigError(
            [
                f"cannot serve metrics on {settings.web_host}:{settings.metrics_port} "
                f"({exc.strerror}): another process has the port; set CONSENTINEL_METRICS_PORT "
                f"to a free one"
            ],
            "consentinel worker",
        ) from None


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(
        prog="consentinel worker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        prepare_topics(settings)
    except RetriableError as exc:
        print(f"consentinel worker: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE

    import faust
    from consentinel.streams.worker.app import app_id, build, is_loopback

    runtime = build(settings)
    served = _serve_metrics(settings)
    names = runtime.names
    lines = [
        f"consentinel worker {app_id(settings)} (group), {settings.partitions} partitions, "
        f"grace period {settings.grace_seconds:g}s",
        f"  reads    {names.consent}, {names.usage}, {names.tick} (ticks every "
        f"{tick_interval(settings):g}s); registry {runtime.registry.topic} (whole, every worker)",
        f"  writes   {names.verdicts}, {names.alerts}, {names.deadletter}",
        f"  state    {settings.state_dir / 'faust'} (RocksDB; changelogs "
        f"{app_id(settings)}-*-changelog)",
        f"  metrics  http://{settings.web_host}:{settings.metrics_port}/metrics",
    ]
    if is_loopback(settings.web_host):
        lines.append(
            f"  web      http://{settings.web_host}:{settings.worker_port}/ (Faust, no tables)"
        )
    else:
        lines.append(f"  web      off (CONSENTINEL_WEB_HOST={settings.web_host} is not loopback)")
    for line in lines:
        print(line, file=sys.stderr, flush=True)
    worker = faust.Worker(
        runtime.app,
        loglevel=settings.log_level.lower(),
        quiet=True,
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code
    finally:
        if isinstance(served, tuple):
            server = served[0]
            server.shutdown()
    return 0
