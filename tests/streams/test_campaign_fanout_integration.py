"""A Mailchimp campaign to a list, judged per member, on the real broker.

The events are what the Mailchimp connector makes of real webhook bodies: 1,000 members
``subscribe`` to the list (a grant scoped to it); 100 of them later withdrew their
consent on the controller's preference centre (no list named: Mailchimp still has them
on the list); 200 other people consented but are on no list, 50 are on another list.
Then the ``campaign`` webhook: ONE list-level send naming nobody.

Expected: exactly 900 allowed verdicts and 100 violations, one per member, ids derived
from the campaign's event id and the member; nothing for anyone else, nothing for the
list's fan-out key. The pure policy over the same events agrees member by member. The
test prints how long the campaign took from its production to its last verdict (a
figure, not an assertion).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import privacy
import pytest
import worker_harness as h
from consentinel.connectors.builtin.mailchimp import MailchimpConnector, sign
from consentinel.connectors.contract import Request
from consentinel.connectors.testkit import instance, make_edge
from consentinel.streams.checker import fanout
from consentinel.streams.events.records import ConsentAction, ConsentEvent, UsageEvent
from consentinel.streams.events.settings import Settings

pytestmark = pytest.mark.integration

LIST = "9f8e7d6c5b"
OTHER_LIST = "1a2b3c4d5e"
MEMBERS, WITHDRAWN, OUTSIDERS, OTHERS = 1000, 100, 200, 50
TIMEOUT_S = 180
GRACE_S = 4
TOKEN = "mc_url_secret_campaign_test"
INSTANCE = instance(
    "mailchimp",
    controller="le-quotidien",
    secrets={"token": TOKEN},
    purpose_map={LIST: "marketing.direct", OTHER_LIST: "marketing.direct"},
    options={"list_notices": {LIST: "notice-v3", OTHER_LIST: "notice-v3"}},
)
REGISTRY = f"""
declarations:
  - list: "{LIST}"
    controller: le-quotidien
    purpose: marketing.direct
    channel: email
    legal_basis: consent
    sourcing: own
    description: The shop's offers, to the readers who subscribed on the Mailchimp form.
"""


def fired_at(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def webhook(connector: MailchimpConnector, form: dict[str, str]) -> Any:
    url = "https://hooks.example.test/hooks/mailchimp"
    body = urlencode(form).encode()
    request = Request(
        method="POST",
        url=url,
        path=urlsplit(url).path,
        query=parse_qs(urlsplit(url).query),
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=body,
        remote="205.201.131.98",
        received_at_ms=h.now_ms(),
    )
    signed = sign(request, INSTANCE)
    connector.verify(signed)
    return connector.map_request(signed)


def subscribe(connector: MailchimpConnector, i: int, list_id: str, at: int) -> ConsentEvent:
    (grant,) = webhook(
        connector,
        {
            "type": "subscribe",
            "fired_at": fired_at(at),
            "data[id]": f"m{i:05d}",
            "data[list_id]": list_id,
            "data[email]": f"member{i}@list-test.example",
            "data[email_type]": "html",
            "data[ip_opt]": "198.51.100.23",
            "data[merges][EMAIL]": f"member{i}@list-test.example",
        },
    ).consent
    return grant


class Campaign:
    """The events, and what the pure policy says of each member's use."""

    def __init__(self, settings: Settings) -> None:
        connector = MailchimpConnector(INSTANCE, make_edge())
        now = h.now_ms()
        self.grants = [subscribe(connector, i, LIST, now - 60 * h.DAY) for i in range(MEMBERS)]
        self.withdrawals = [
            ConsentEvent(
                event_id=f"prefs:{g.subject_key[:16]}",
                occurred_at_ms=now - 30 * h.DAY,
                received_at_ms=now,
                source="preference-centre",
                processor="test",
                subject_key=g.subject_key,
                hint=g.hint,
                controller="le-quotidien",
                action=ConsentAction.WITHDRAW,
            )
            for g in self.grants[:WITHDRAWN]
        ]
        sc = h.Scenario(settings, t0=now - 60 * h.DAY)
        self.outsiders = [
            sc.consent(10_000 + i, purposes=["marketing.direct"]) for i in range(OUTSIDERS)
        ]
        self.others = [
            subscribe(connector, 20_000 + i, OTHER_LIST, now - 60 * h.DAY) for i in range(OTHERS)
        ]
        (self.send,) = webhook(
            connector,
            {
                "type": "campaign",
                "fired_at": fired_at(now - 3_600_000),
                "data[id]": "c0ffee5678",
                "data[subject]": "December offers",
                "data[status]": "sent",
                "data[list_id]": LIST,
            },
        ).usage
        self.consents = [*self.grants, *self.withdrawals, *self.outsiders, *self.others]
        self.members = {g.subject_key for g in self.grants}

    def expected(self, settings: Settings, registry: Path) -> dict[str, str]:
        """member's use event id -> the pure policy's decision."""
        decls = h.declarations(registry)
        out: dict[str, str] = {}
        for key in sorted(self.members):
            use: UsageEvent = fanout.member_use(self.send, key, "")
            out[use.event_id] = str(h.oracle(settings, use, self.consents, decls).decision)
        return out


@pytest.fixture
def settings(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Any, tmp_path: Path
) -> Settings:
    s: Settings = make_settings(
        topic_prefix=topic_prefix,
        bootstrap_servers=kafka_bootstrap,
        partitions=6,
        grace_seconds=GRACE_S,
    )
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    return h.prepare(s, registry)


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    with h.running_worker(settings, tmp_path / "worker.log") as proc:
        yield proc


def test_a_campaign_to_1000_members_gives_900_allowed_and_100_violations(
    settings: Settings, worker: Any, tmp_path: Path
) -> None:
    story = Campaign(settings)
    assert story.send.attributes["fan_out"] == "list"
    expected = story.expected(settings, tmp_path / "registry.yaml")
    assert sorted(expected.values()).count("allowed") == MEMBERS - WITHDRAWN
    assert sorted(expected.values()).count("violation") == WITHDRAWN

    producer, outputs = h.Producer(settings), h.Outputs(settings)
    try:
        worker.wait_judging()
        producer.send(story.consents)
        start = time.monotonic()
        producer.send([story.send])
        h.wait_for(
            lambda: len(outputs.poll().first_verdicts()) >= MEMBERS,
            TIMEOUT_S,
            f"{MEMBERS} member verdicts",
            explain=lambda: f"{len(outputs.first_verdicts())} verdicts so far",
        )
        elapsed = time.monotonic() - start
        print(
            f"\ncampaign to {MEMBERS} members on 6 partitions: produced to last verdict "
            f"{elapsed:.2f} s, of which the {GRACE_S} s grace period every leg waits for its "
            "partition's consent (one worker, broker round trips and tick interval included)"
        )
        # anything late (a verdict or alert for a non-member) would show up in this time
        h.wait_for(lambda: len(outputs.poll().alerts) > 0, TIMEOUT_S, "the alerts")
        time.sleep(3)
        outputs.poll()
    finally:
        producer.close()

    verdicts = outputs.verdicts
    assert len(verdicts) == MEMBERS, "one verdict per member, no correction, nothing else"
    decided = {v.usage_event_id: str(v.decision) for v in verdicts}
    assert decided == expected, "each member's verdict is the pure policy's, with its id"
    assert sorted(decided.values()).count("allowed") == MEMBERS - WITHDRAWN
    assert sorted(decided.values()).count("violation") == WITHDRAWN
    assert {v.subject_key for v in verdicts} == story.members
    withdrawn = {w.subject_key for w in story.withdrawals}
    assert {a.subject_key for a in outputs.alerts} == withdrawn
    assert all(a.campaign_id == "c0ffee5678" for a in outputs.alerts)
    assert story.send.subject_key not in {v.subject_key for v in verdicts}
    assert privacy.raw_addresses(b"\n".join(outputs.raw)) == []
    outputs.close()
