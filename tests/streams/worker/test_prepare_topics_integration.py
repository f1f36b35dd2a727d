"""Fresh-start readiness: the worker creates its changelogs and tick topic before Faust
starts, and returns only once the broker's metadata shows them all."""

from __future__ import annotations

import os

import pytest
from consentinel.streams import topics_admin
from consentinel.streams.checker.ticks import tick_topic
from consentinel.streams.events.settings import Settings
from consentinel.streams.worker.command import changelog_topics, prepare_topics

pytestmark = pytest.mark.integration


def test_changelogs_exist_and_are_visible_before_the_agent_starts(
    kafka_settings: Settings, make_settings
) -> None:
    settings = make_settings(
        topic_prefix=kafka_settings.topic_prefix,
        bootstrap_servers=kafka_settings.bootstrap_servers,
        partitions=6,
    )
    with open(os.devnull, "w") as sink:
        topics_admin.create(settings, out=sink)
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
