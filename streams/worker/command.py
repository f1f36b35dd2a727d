"""``consentinel worker``: run the stream processors (consent ledger and usage checker).

Before Faust starts, the worker checks the topics (all present, consent and usage with
the partition count of CONSENTINEL_PARTITIONS, changelogs too) and creates its tick
topic; a mismatch stops it with what to do. Then it serves /metrics on
CONSENTINEL_METRICS_PORT, says what it listens on, and runs until SIGTERM or SIGINT,
which stop it cleanly (the record in hand finishes, offsets are committed). After any
other stop, its local table stores are rebuilt from the changelogs (``worker.stores``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

from consentinel.streams import topics_admin
from consentinel.streams.checker.ticks import TICK_TOPIC_CONFIG, tick_interval, tick_topic
from consentinel.streams.events import topics
from consentinel.streams.events.errors import FatalConfigError, RetriableError
from consentinel.streams.events.ops_access import OpsAccess
from consentinel.streams.events.settings import Settings
from consentinel.streams.worker import health, stores
from consentinel.streams.worker.gctune import GcPacer, PauseWatch, tune_gc
from consentinel.streams.worker.health import Readiness

log = logging.getLogger("consentinel.worker")

EX_UNAVAILABLE = 69
TABLES = ("ledger", "holds", "stats")


#: Changelog topics: compacted (the last value of a key is the state), like Faust's own, in
#: segments of 64 MiB. Kafka compacts only the segments it has closed, and closes one at
#: 1 GiB by default: a partition's changelog below that was never compacted, so a worker
#: taking the partition over read every version of every state ever written (the restore
#: reads about 60,000 records a second, ``worker.restore``). With 64 MiB segments what is
#: read is the live state plus at most the open segment and what the cleaner has not yet
#: reached. Set at creation; an existing changelog that inherits a larger segment size from
#: the broker's defaults (made by an earlier version, or by Faust) is altered to it at start
#: (``align_changelogs``); a size set on the topic itself is an operator's and is kept.
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "segment.bytes": str(64 * 1024 * 1024)}
#: Where a topic's config value comes from when the topic does not set it itself (Kafka's
#: ``DescribeConfigs`` ``config_source``): the broker's defaults.
INHERITED = frozenset({"DEFAULT_CONFIG", "STATIC_BROKER_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG"})
#: How long the worker waits for topics it created to show in the broker's metadata.
METADATA_WAIT_S = 60.0


def changelog_topics(settings: Settings) -> list[str]:
    from consentinel.streams.worker.app import app_id

    return [f"{app_id(settings)}-{name}-changelog" for name in TABLES]


def prepare_topics(settings: Settings, *, wait_s: float = METADATA_WAIT_S) -> list[str]:
    """Check the topics the worker reads and writes; create its tick topic and its table
    changelogs if missing, and wait until every one of them is visible in the broker's
    metadata with its partitions (a changelog Faust creates itself can stay invisible for
    minutes: every state write then fails with ``PartitionsMismatch`` and nothing is
    acknowledged). Returns the topics created.

    Blocks on the Kafka admin client (up to ``wait_s`` for the metadata). Raises
    ``FatalConfigError`` (a topic missing or with the wrong partition count: what to do is
    in the message) or ``RetriableError`` (no broker answers, a cluster just started has not
    settled within ``topics_admin.SETTLE_WAIT_S``, or the metadata does not show a created
    topic in time).
    """
    from kafka.errors import TopicAlreadyExistsError

    with open(os.devnull, "w") as sink:
        problems = topics_admin.check(settings, out=sink)
    changelogs = changelog_topics(settings)
    tick = tick_topic(settings)
    usage = settings.topic(topics.USAGE)
    consent = settings.topic(topics.CONSENT)
    created: list[str] = []  # across attempts (``topics_admin.with_admin``)

    def prepare(admin: Any) -> None:
        current = topics_admin.describe(admin, [usage, tick, *changelogs])
        found = list(problems)  # this attempt's, with the topics' own
        if usage in current and current[usage].partitions != settings.partitions:
            found.append(
                f"{usage} has {current[usage].partitions} partitions but CONSENTINEL_PARTITIONS="
                f"{settings.partitions}: set CONSENTINEL_PARTITIONS={current[usage].partitions} "
                f"(the tables must have as many partitions as consent and usage)"
            )
        for name in (tick, *changelogs):
            st = current.get(name)
            if st is not None and st.partitions != settings.partitions:
                found.append(
                    f"{name} has {st.partitions} partitions, the worker needs "
                    f"{settings.partitions} (like consent and usage): stop every worker, delete "
                    f"{name} (a changelog is rebuilt from its source only if you also reset the "
                    f"group's offsets) and start again"
                )
        if found:
            raise FatalConfigError(found, "the Kafka topics for the worker")
        align_changelogs(admin, [c for c in changelogs if c in current])
        wanted = {tick: dict(TICK_TOPIC_CONFIG), **{c: dict(CHANGELOG_CONFIG) for c in changelogs}}
        for name, config in wanted.items():
            if name in current:
                continue
            try:
                admin.create_topics(
                    {
                        name: {
                            "num_partitions": settings.partitions,
                            "replication_factor": settings.replication_factor,
                            "configs": config,
                        }
                    }
                )
                created.append(name)
                log.info("created %s (%d partitions)", name, settings.partitions)
            except TopicAlreadyExistsError:
                pass  # another worker of the group created it meanwhile
        _wait_visible(admin, [consent, usage, *wanted], settings.partitions, wait_s)

    topics_admin.with_admin(settings.bootstrap_servers, prepare)
    return created


def align_changelogs(admin: Any, names: list[str]) -> list[str]:
    """Give each changelog of ``names`` the segment size of ``CHANGELOG_CONFIG`` if it
    inherits a larger one from the broker (Kafka's default of 1 GiB: a changelog below that
    is never compacted, and a worker taking a partition over reads every version of every
    state ever written). One incremental ``AlterConfigs`` per topic, nothing else changed;
    a size set on the topic itself (an operator's) is kept. Returns the topics altered.

    Blocks on the admin client. A refusal (no ALTER_CONFIGS permission, say) is logged and
    does not stop the worker: it judges as before, only its restores read more."""
    from kafka.admin import ConfigResource, ConfigResourceType

    key = "segment.bytes"
    target = int(CHANGELOG_CONFIG[key])
    if not names:
        return []
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n, configs={key: None}) for n in names],
        config_filter="all",
    )
    altered: list[str] = []
    for name, entries in sorted((described.get("topic") or {}).items()):
        entry = entries.get(key) or {}
        current, source = entry.get("value"), entry.get("config_source")
        if current is None or source not in INHERITED or int(current) <= target:
            continue
        try:
            result = admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, configs={key: str(target)})]
            )
            outcome = (result.get("topic") or {}).get(name)
            if outcome != "OK":
                raise RuntimeError(f"the broker answered {outcome!r}")
        except Exception as exc:
            log.warning(
                "%s keeps the %s=%s it inherits from the broker (setting %d failed: %s: %s). "
                "Kafka compacts only closed segments, so a worker taking one of its partitions "
                "over reads more of it; run kafka-configs.sh --alter --entity-type topics "
                "--entity-name %s --add-config %s=%d",
                name,
                key,
                current,
                target,
                type(exc).__name__,
                exc,
                name,
                key,
                target,
            )
            continue
        altered.append(name)
        log.info(
            "%s: %s set to %d (it inherited %s from the broker, so Kafka never compacted "
            "its open segment)",
            name,
            key,
            target,
            current,
        )
    return altered


def _wait_visible(admin: Any, names: list[str], partitions: int, wait_s: float) -> None:
    """Until the broker's metadata shows every topic of ``names`` with ``partitions``."""
    deadline = time.monotonic() + wait_s
    while True:
        current = topics_admin.describe(admin, names)
        missing = [n for n in names if n not in current or current[n].partitions != partitions]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RetriableError(
                f"the broker's metadata still does not show {', '.join(missing)} with "
                f"{partitions} partitions {wait_s:g}s after they were created: check the "
                f"broker's health (controller, disk), then start the worker again"
            )
        time.sleep(0.2)


def quiet_libraries(level: int) -> None:
    """Explicit levels for the libraries' loggers: the Kafka clients at WARNING or above
    (their INFO and DEBUG records are per fetch and per request), Faust and mode at the
    worker's level. With no level of their own they would follow the root logger."""
    for name in ("aiokafka", "kafka"):
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
    for name in ("faust", "mode"):
        logging.getLogger(name).setLevel(level)


def _serve_metrics(settings: Settings, readiness: Readiness) -> Any:
    access = OpsAccess.from_env()
    try:
        return health.serve(settings.metrics_port, readiness, access)
    except OSError as exc:
        raise FatalConfigError(
            [
                f"cannot serve metrics on {access.host}:{settings.metrics_port} "
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
    quiet_libraries(logging.getLogger().level)
    try:
        prepare_topics(settings)
    except RetriableError as exc:
        print(f"consentinel worker: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE

    import faust
    from consentinel.streams.worker import faust_compat
    from consentinel.streams.worker.app import app_id, build, is_loopback

    datadir = settings.state_dir / "faust"
    removed = stores.open_stores(datadir, TABLES)
    if removed:
        log.warning(
            "the worker did not stop cleanly last time (killed or crashed): its %d local "
            "table store(s) may hold state Kafka never acknowledged, which a recovery from "
            "the changelogs would only partly write over; they are removed and rebuilt "
            "from the changelogs (%s)",
            len(removed),
            datadir,
        )
    runtime = build(settings)
    if settings.gc_threshold > 0:
        pacer = GcPacer()

        @runtime.app.task  # type: ignore[untyped-decorator]
        async def pace_gc() -> None:  # young objects collected often, survivors frozen
            await pacer.run()

    served = _serve_metrics(settings, runtime.readiness)
    names = runtime.names
    lines = [
        f"consentinel worker {app_id(settings)} (group), {settings.partitions} partitions, "
        f"grace period {settings.grace_seconds:g}s",
        f"  reads    {names.consent}, {names.usage}, {names.tick} (ticks every "
        f"{tick_interval(settings):g}s); registry {runtime.registry.topic} (whole, every worker)",
        f"  writes   {names.verdicts}, {names.alerts}, {names.deadletter}",
        f"  state    {settings.state_dir / 'faust'} (RocksDB; changelogs "
        f"{app_id(settings)}-*-changelog)",
        f"  metrics  http://{served.server_address[0]}:{settings.metrics_port}/metrics "
        f"(readiness: /healthz)",
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
    faust_compat.quiet_worker(worker, lambda level: quiet_libraries(level))
    faust_compat.prompt_shutdown(worker)
    tune_gc(settings.gc_threshold)  # start-up done: freeze it, collect young objects less often
    PauseWatch().install()  # a collection that stops the worker long is said
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        served.shutdown()
    if code == 0:
        stores.mark_clean(datadir)
    return code
