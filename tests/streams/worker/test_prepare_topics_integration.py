"""Fresh-start readiness: the worker creates its changelogs and tick topic before Faust
starts, and returns only once the broker's metadata shows them all."""

from __future__ import annotations

import os
from typing import Any

import pytest
from consentinel.streams import topics_admin
from consentinel.streams.checker.ticks import tick_topic
from consentinel.streams.events.settings import Settings
from consentinel.streams.worker.command import align_changelogs, changelog_topics, prepare_topics
from kafka.admin import NewTopic

pytestmark = pytest.mark.integration


def with_source_topics(kafka_settings: Settings, make_settings: Any) -> Settings:
    """Settings of 6 partitions on the test broker, with the source topics created."""
    settings: Settings = make_settings(
        topic_prefix=kafka_settings.topic_prefix,
        bootstrap_servers=kafka_settings.bootstrap_servers,
        partitions=6,
    )
    with open(os.devnull, "w") as sink:
        topics_admin.create(settings, out=sink)
    return settings


def test_changelogs_exist_and_are_visible_before_the_agent_starts(
    kafka_settings: Settings, make_settings
) -> None:
    settings = with_source_topics(kafka_settings, make_settings)
    created = prepare_topics(settings)
    wanted = [tick_topic(settings), *changelog_topics(settings)]
    assert sorted(created) == sorted(wanted)
    admin = topics_admin.admin_client(settings.bootstrap_servers)
    try:
        seen = topics_admin.describe(admin, wanted)
    finally:
        admin.close()
    assert {n: s.partitions for n, s in seen.items()} == {n: 6 for n in wanted}
    for name in changelog_topics(settings):
        assert seen[name].config.get("cleanup.policy") == "compact", name
        # compacted in segments of 64 MiB, not the 1 GiB that leaves a changelog uncompacted
        assert seen[name].config.get("segment.bytes") == str(64 * 1024 * 1024), name
    assert prepare_topics(settings) == [], "a second start creates nothing"


def _segment_bytes(settings: Settings, name: str) -> tuple[str, str]:
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = topics_admin.admin_client(settings.bootstrap_servers)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, configs={"segment.bytes": None})],
            config_filter="all",
        )
    finally:
        admin.close()
    entry = described["topic"][name]["segment.bytes"]
    return entry["value"], entry["config_source"]


def test_existing_changelogs_get_the_segment_size_unless_their_own_is_set(
    kafka_settings: Settings, make_settings
) -> None:
    """Changelogs made before the segment size was set (by an earlier version, or by Faust)
    inherit the broker's 1 GiB and are never compacted: the worker's start sets 64 MiB on
    them, changes nothing else, and keeps a size an operator set on the topic."""
    settings = with_source_topics(kafka_settings, make_settings)
    ledger, holds, stats = changelog_topics(settings)
    operators = str(128 * 1024 * 1024)
    admin = topics_admin.admin_client(settings.bootstrap_servers)
    try:
        admin.create_topics(
            [
                NewTopic(ledger, 6, 1, topic_configs={"cleanup.policy": "compact"}),
                NewTopic(holds, 6, 1, topic_configs={"cleanup.policy": "compact"}),
                NewTopic(
                    stats,
                    6,
                    1,
                    topic_configs={"cleanup.policy": "compact", "segment.bytes": operators},
                ),
            ]
        )
    finally:
        admin.close()
    before = _segment_bytes(settings, ledger)
    assert before[1] != "DYNAMIC_TOPIC_CONFIG" and int(before[0]) > 64 * 1024 * 1024, before

    assert sorted(prepare_topics(settings)) == [tick_topic(settings)], "no changelog is made"

    for name in (ledger, holds):
        assert _segment_bytes(settings, name) == (str(64 * 1024 * 1024), "DYNAMIC_TOPIC_CONFIG")
    assert _segment_bytes(settings, stats) == (operators, "DYNAMIC_TOPIC_CONFIG")
    admin = topics_admin.admin_client(settings.bootstrap_servers)
    try:
        seen = topics_admin.describe(admin, [ledger, holds, stats])
        assert {n: s.config.get("cleanup.policy") for n, s in seen.items()} == {
            ledger: "compact",
            holds: "compact",
            stats: "compact",
        }, "the alteration is incremental: the rest of each topic's config stays"
        assert align_changelogs(admin, [ledger, holds, stats]) == [], "done once"
    finally:
        admin.close()
