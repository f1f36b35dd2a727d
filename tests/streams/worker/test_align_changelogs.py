"""``align_changelogs`` when the broker refuses the change: said, and the worker goes on.
(The change itself is tested on the real broker: test_prepare_topics_integration.py.)"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from consentinel.streams.worker.command import align_changelogs

GIB = str(1024**3)


class RefusingAdmin:
    """Describes every topic as inheriting Kafka's 1 GiB segments; refuses to alter them
    as a broker does without the ALTER_CONFIGS permission (kafka-python returns the error
    per resource)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.altered: list[str] = []

    def describe_configs(self, resources: list[Any], config_filter: str) -> dict[str, Any]:
        assert config_filter == "all"
        return {
            "topic": {
                r.name: {"segment.bytes": {"value": GIB, "config_source": "DEFAULT_CONFIG"}}
                for r in resources
            }
        }

    def alter_configs(self, resources: list[Any]) -> dict[str, Any]:
        self.altered += [r.name for r in resources]
        if isinstance(self.answer, Exception):
            raise self.answer
        return {"topic": {r.name: self.answer for r in resources}}


@pytest.mark.parametrize(
    "answer", ["TopicAuthorizationFailedError", PermissionError("ALTER_CONFIGS denied")]
)
def test_a_refusal_is_logged_with_the_command_and_nothing_is_raised(
    answer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    admin = RefusingAdmin(answer)
    with caplog.at_level(logging.WARNING, logger="consentinel.worker"):
        assert align_changelogs(admin, ["a-ledger-changelog"]) == []
    assert admin.altered == ["a-ledger-changelog"]
    [record] = caplog.records
    assert "a-ledger-changelog keeps the segment.bytes=1073741824" in record.getMessage()
    assert "--entity-name a-ledger-changelog --add-config segment.bytes=67108864" in (
        record.getMessage()
    )


def test_no_names_asks_nothing() -> None:
    assert align_changelogs(None, []) == []
