"""``consentinel topics create|check``: the topics of streams/events/REFERENCE.md, via kafka-python.

``create`` is idempotent: existing topics are compared, not touched, and the run says
what it changed (nothing, the second time). ``check`` verifies an existing cluster; a
partition-count mismatch between usage and consent is fatal (table lookups would miss
silently and raise false "no consent" alerts) and the message says how to fix it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO, TypeVar

from consentinel.streams.events import topics
from consentinel.streams.events.errors import FatalConfigError, RetriableError
from consentinel.streams.events.settings import Settings
from kafka.admin import KafkaAdminClient
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    NotControllerError,
    TopicAlreadyExistsError,
    UnknownBrokerIdError,
)

T = TypeVar("T")

#: What kafka-python's admin client raises while a cluster that just started has not told
#: it everything yet: a controller id with no address in its metadata (UnknownBrokerIdError,
#: seen on a 3-node KRaft cluster after all three were listed), a node not connected yet, a
#: controller that moved. A new client reads the metadata again.
_CLUSTER_SETTLING = (UnknownBrokerIdError, NodeNotReadyError, NotControllerError)
#: How long ``with_admin`` keeps trying while the cluster settles.
SETTLE_WAIT_S = 60.0


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    config: dict[str, str]


def admin_client(bootstrap: str) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","),
            client_id="consentinel-admin",
            request_timeout_ms=15_000,
        )
    except (KafkaTimeoutError, KafkaConnectionError):
        raise RetriableError(
            f"no Kafka broker answers at {bootstrap}: start one (`make broker`) "
            f"or set CONSENTINEL_BOOTSTRAP_SERVERS"
        ) from None


def with_admin(
    bootstrap: str,
    work: Callable[[KafkaAdminClient], T],
    *,
    wait_s: float = SETTLE_WAIT_S,
    connect: Callable[[str], KafkaAdminClient] = admin_client,
) -> T:
    """``work(admin)`` with a new admin client, again with a new one (after 1 s) while the
    cluster is still settling (``_CLUSTER_SETTLING``), for up to ``wait_s``. ``work`` must
    be idempotent: it may have done part of its job before the error.

    Blocks. Raises ``RetriableError`` when the cluster has not settled in time."""
    deadline = time.monotonic() + wait_s
    while True:
        admin = connect(bootstrap)
        try:
            return work(admin)
        except _CLUSTER_SETTLING as exc:
            if time.monotonic() > deadline:
                raise RetriableError(
                    f"the Kafka cluster at {bootstrap} is still settling after {wait_s:.0f} s "
                    f"({type(exc).__name__}: its metadata names a broker or controller it "
                    f"cannot reach): check that every broker is up and reachable at the "
                    f"address it advertises, then run this again"
                ) from None
        finally:
            admin.close()
        time.sleep(1.0)


def describe(admin: KafkaAdminClient, names: list[str]) -> dict[str, TopicState]:
    existing = set(admin.list_topics())
    wanted = [n for n in names if n in existing]
    if not wanted:
        return {}
    out: dict[str, TopicState] = {}
    for meta in admin.describe_topics(wanted):
        name = meta.get("name") or meta.get("topic")
        out[name] = TopicState(name, len(meta["partitions"]), {})
    from kafka.admin import ConfigResource, ConfigResourceType

    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in wanted]
    described = admin.describe_configs(resources)
    for name, entries in (described.get("topic") or {}).items():
        if name in out:
            config = {k: v.get("value") for k, v in entries.items() if v.get("value") is not None}
            out[name] = TopicState(name, out[name].partitions, config)
    return out


def _settled(
    admin: KafkaAdminClient, names: list[str], wait_s: float = 15.0
) -> dict[str, TopicState]:
    """Describe ``names``, waiting (bounded) for freshly created topics to show in metadata."""
    deadline = time.monotonic() + wait_s
    while True:
        current = describe(admin, names)
        if len(current) == len(names) or time.monotonic() > deadline:
            return current
        time.sleep(0.2)


def create(
    settings: Settings, partitions: int | None = None, out: TextIO = sys.stdout
) -> list[str]:
    """Create every missing topic; returns the names created (empty when all existed)."""
    n = partitions or settings.partitions
    specs = topics.topic_specs(n, settings.topic_prefix)
    created: list[str] = []  # across attempts: a retry finds the first one's topics
    with_admin(
        settings.bootstrap_servers, lambda admin: _create(admin, specs, settings, out, created)
    )
    return created


def _create(
    admin: KafkaAdminClient,
    specs: list[topics.TopicSpec],
    settings: Settings,
    out: TextIO,
    created: list[str],
) -> None:
    current = describe(admin, [s.name for s in specs])
    missing = [s for s in specs if s.name not in current]
    for spec in missing:
        try:
            admin.create_topics(
                {
                    spec.name: {
                        "num_partitions": spec.partitions,
                        "replication_factor": settings.replication_factor,
                        "configs": spec.config,
                    }
                },
                validate_only=False,
            )
            created.append(spec.name)
            print(f"created {spec.name} ({spec.partitions} partitions; {spec.purpose})", file=out)
        except TopicAlreadyExistsError:
            print(f"exists  {spec.name} (created concurrently)", file=out)
    for spec in specs:
        if spec.name in current and spec.name not in created:
            st = current[spec.name]
            print(f"exists  {spec.name} ({st.partitions} partitions), unchanged", file=out)
    if not created:
        print("nothing to change: every topic already exists", file=out)
    problems = _check(specs, _settled(admin, [s.name for s in specs]), settings)
    if problems:
        raise FatalConfigError(problems, "the Kafka topics")


def _check(
    specs: list[topics.TopicSpec], current: dict[str, TopicState], settings: Settings
) -> list[str]:
    problems: list[str] = []
    for spec in specs:
        if spec.name not in current:
            problems.append(f"topic {spec.name} is missing: run `consentinel topics create`")
    consent = current.get(settings.topic(topics.CONSENT))
    usage = current.get(settings.topic(topics.USAGE))
    if consent and usage and consent.partitions != usage.partitions:
        wanted = max(consent.partitions, usage.partitions)
        problems.append(
            f"{usage.name} has {usage.partitions} partitions but {consent.name} has "
            f"{consent.partitions}: they must be equal, or consent lookups miss and raise false "
            f"'no consent' alerts. Fix: add partitions to the smaller one with "
            f"`kafka-topics.sh --alter --topic NAME --partitions {wanted}` "
            f"before starting workers (existing keys then move: replay consent from the start)"
        )
    registry = current.get(settings.topic(topics.REGISTRY))
    if registry and registry.config and registry.config.get("cleanup.policy") != "compact":
        problems.append(
            f"{registry.name} must be compacted (cleanup.policy=compact), found "
            f"{registry.config.get('cleanup.policy')!r}: the registry would lose declarations"
        )
    return problems


def check(settings: Settings, out: TextIO = sys.stdout) -> list[str]:
    specs = topics.topic_specs(settings.partitions, settings.topic_prefix)
    current = with_admin(
        settings.bootstrap_servers, lambda admin: describe(admin, [s.name for s in specs])
    )
    for name, st in sorted(current.items()):
        print(
            f"{name}: {st.partitions} partitions, cleanup.policy={st.config.get('cleanup.policy')}",
            file=out,
        )
    return _check(specs, current, settings)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="consentinel topics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    c = sub.add_parser("create", help="create missing topics (idempotent)")
    c.add_argument("--partitions", type=int, help="partitions for co-partitioned topics")
    sub.add_parser("check", help="verify the topics of an existing cluster")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        if args.action == "create":
            create(settings, args.partitions)
            return 0
        problems = check(settings)
    except RetriableError as exc:
        print(f"consentinel topics: {exc}", file=sys.stderr)
        return 69  # EX_UNAVAILABLE
    except KafkaError as exc:
        print(f"consentinel topics: Kafka refused the request: {exc}", file=sys.stderr)
        return 69
    if problems:
        raise FatalConfigError(problems, "the Kafka topics")
    print("topics ok")
    return 0
