"""A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat accept the same).

``POST <url>`` with ``text`` (the fallback and notification line) and ``blocks``: a
header, the facts, and a button to the incident in the console. The URL is itself a
secret (whoever has it can post): give it by reference (``env:`` / ``file:``); logs show
its host only. Incoming webhooks have no idempotency header: the key is shown in the
message's context line, so a person can tell a redelivery from a new change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from consentinel.streams.events import codec

from ..model import IncidentStatus
from .base import Notification, headline, iso, last_step
from .http import HttpPoster

if TYPE_CHECKING:
    from ..config import Options

_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def message(n: Notification) -> dict[str, Any]:
    inc = n.incident
    title = headline(n.kind, inc)
    icon = (
        ":white_check_mark:"
        if inc.status is IncidentStatus.RESOLVED
        else _EMOJI.get(inc.severity, ":bell:")
    )
    facts = [
        f"*Rule*\n{inc.rule_id} {inc.rule_source}",
        f"*Severity*\n{inc.severity}",
        f"*Controller*\n{inc.controller}",
        f"*Campaign*\n{inc.campaign_id or '(none)'}",
        f"*Purpose used*\n{inc.purpose_used or '(undeclared)'}",
        f"*Alerts*\n{inc.alert_count} ({inc.resolved_alert_count} corrected)",
    ]
    return {
        "text": f"{icon} {title}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {inc.summary}"[:3000]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Status*: {last_step(inc)}"[:3000]},
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the evidence"},
                        "url": n.link,
                    }
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"first {iso(inc.opened_at_ms)} · last {iso(inc.last_seen_ms)}"
                        f" · key `{n.idempotency_key}`",
                    }
                ],
            },
        ],
    }


class SlackSink:
    def __init__(self, name: str, url: str, timeout_s: float = 10.0) -> None:
        self.name = name
        self._http = HttpPoster(name, url, timeout_s)

    async def deliver(self, notification: Notification) -> None:
        await self._http.post(
            codec.dumps(message(notification)), {"Content-Type": "application/json"}
        )

    async def close(self) -> None:
        await self._http.close()


def from_options(name: str, opts: Options) -> SlackSink:
    raw = opts.raw.get("url")
    if isinstance(raw, str) and raw.startswith("http"):
        opts.problem("'url' of a Slack webhook is a secret: give it as env:VARIABLE or file:/path")
    return SlackSink(
        name,
        opts.url("url", secret_ok=True),
        timeout_s=opts.number("timeout_seconds", 10.0, 0.5, 300.0),
    )
