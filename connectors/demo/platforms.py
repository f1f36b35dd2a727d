"""Request bodies as each platform sends them (connectors.md), for the demo feed.

Pure functions: they take the values and return the exact raw body a platform would post
(and its content type). Signing is not done here: the feed signs every request with the
connector module's own ``sign`` and the instance's secrets, as the platform would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from consentinel.streams.events import codec

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class Post:
    """One webhook request to one connector instance."""

    instance: str
    body: bytes
    content_type: str
    what: str  # what it reports, counted in the summary ("subscribe", "send", "STOP"...)
    events: int = 1  # platform events in the request (batches carry several)
    headers: Mapping[str, str] = field(default_factory=dict)
    query: str = ""  # what the platform adds to the URL it calls (and signs), urlencoded


def local_time(ms: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC (Mailchimp's ``fired_at``)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- Mailchimp Marketing (§1.1): form, PHP-style bracketed keys ---------------------------


def mailchimp_member(
    kind: str,
    *,
    fired_at_ms: int,
    list_id: str,
    member_id: str,
    email: str,
    ip: str,
    first_name: str,
    extra: Mapping[str, str] | None = None,
) -> bytes:
    """A member event; ``ip`` empty for a member an admin added (an import): Mailchimp
    then has no sign-up or opt-in IP to report."""
    fields = {
        "type": kind,
        "fired_at": local_time(fired_at_ms),
        "data[id]": member_id,
        "data[list_id]": list_id,
        "data[email]": email,
        "data[email_type]": "html",
        "data[ip_opt]": ip,
        "data[web_id]": member_id[:6],
        "data[merges][EMAIL]": email,
        "data[merges][FNAME]": first_name,
        **(extra or {}),
    }
    if kind == "subscribe":
        fields["data[ip_signup]"] = ip
    return urlencode(fields).encode("ascii")


def mailchimp_campaign(*, fired_at_ms: int, campaign_id: str, list_id: str, subject: str) -> bytes:
    """A campaign sent to a whole audience: Mailchimp names no recipient."""
    fields = {
        "type": "campaign",
        "fired_at": local_time(fired_at_ms),
        "data[id]": campaign_id,
        "data[subject]": subject,
        "data[status]": "sent",
        "data[reason]": "",
        "data[list_id]": list_id,
    }
    return urlencode(fields).encode("ascii")


# -- Mandrill (§1.2): one form field holding a JSON array ---------------------------------


def mandrill_event(
    event: str,
    *,
    message_id: str,
    ts_s: int,
    email: str,
    subject: str,
    tags: Sequence[str],
    metadata: Mapping[str, str],
    subaccount: str,
    url: str | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "event": event,
        "_id": message_id,
        "ts": ts_s,
        "msg": {
            "ts": ts_s,
            "_id": message_id,
            "email": email,
            "subject": subject,
            "tags": list(tags),
            "metadata": dict(metadata),
            "subaccount": subaccount,
            "state": "sent",
        },
    }
    if event in ("open", "click"):
        item.update(ip="203.0.113.40", user_agent="Mozilla/5.0 (Macintosh)")
    if url is not None:
        item["url"] = url
    return item


def mandrill_body(events: Sequence[Mapping[str, Any]]) -> bytes:
    return urlencode({"mandrill_events": codec.dumps(list(events)).decode("utf-8")}).encode()


# -- SendGrid Event Webhook (§1.4): a JSON array, body ends with CRLF ---------------------


def sendgrid_event(
    event: str,
    *,
    event_id: str,
    message_id: str,
    ts_s: int,
    email: str,
    campaign_id: str,
    campaign_name: str,
    categories: Sequence[str],
    url: str | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "email": email,
        "timestamp": ts_s,
        "event": event,
        "sg_event_id": event_id,
        "sg_message_id": f"{message_id}.filter-0",
        "smtp-id": f"<{message_id}@ismtpd.sendgrid.net>",
        "category": list(categories),
        "marketing_campaign_id": campaign_id,
        "marketing_campaign_name": campaign_name,
    }
    if event == "delivered":
        item["response"] = "250 OK"
    if event in ("open", "click"):
        item.update(useragent="Mozilla/5.0 (iPhone)", ip="198.51.100.77", sg_machine_open=False)
    if url is not None:
        item["url"] = url
    return item


def sendgrid_body(events: Sequence[Mapping[str, Any]]) -> bytes:
    return codec.dumps(list(events)) + b"\r\n"


# -- Twilio Programmable Messaging (§2.1): form bodies ------------------------------------


def twilio_status(
    *, sid: str, status: str, account: str, service: str, sender: str, to: str, dlr: str = ""
) -> bytes:
    fields = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": account,
        "MessagingServiceSid": service,
        "From": sender,
        "To": to,
        "ApiVersion": "2010-04-01",
    }
    if dlr:
        fields["RawDlrDoneDate"] = dlr
    return urlencode(fields).encode("ascii")


def twilio_inbound(
    *, sid: str, account: str, service: str, sender: str, to: str, text: str, opt_out: str = ""
) -> bytes:
    fields = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": account,
        "MessagingServiceSid": service,
        "From": sender,
        "To": to,
        "Body": text,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "FromCountry": "FR",
        "ApiVersion": "2010-04-01",
    }
    if opt_out:
        fields["OptOutType"] = opt_out
    return urlencode(fields).encode("utf-8")


def dlr_time(ms: int) -> str:
    """Twilio's ``RawDlrDoneDate``: ``YYMMDDhhmm`` (UTC)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%y%m%d%H%M")


# -- Twilio Voice: call status callbacks (form bodies) -------------------------------------


def rfc2822(ms: int) -> str:
    """Twilio's ``Timestamp``: ``Mon, 05 Jan 2026 10:03:15 +0000``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def twilio_call_status(
    *, sid: str, status: str, account: str, caller: str, to: str, started_ms: int, talked_s: int
) -> bytes:
    """The terminal status callback of one outbound call (Twilio sends its end time)."""
    fields = {
        "AccountSid": account,
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "CallStatus": status,
        "CallbackSource": "call-progress-events",
        "Direction": "outbound-api",
        "From": caller,
        "To": to,
        "ToCountry": "FR",
        "Timestamp": rfc2822(started_ms + talked_s * 1000),
        "SequenceNumber": "3" if status == "completed" else "2",
        "CallDuration": str(talked_s),
    }
    if status == "completed":
        fields["AnsweredBy"] = "human"
    return urlencode(fields).encode("ascii")


# -- Vonage Messages API: message status (JSON) -------------------------------------------


def msisdn(phone: str) -> str:
    """Vonage's number format: E.164 without the ``+``."""
    return phone.lstrip("+")


def vonage_status(
    *, message_uuid: str, status: str, to: str, sender: str, at_ms: int, client_ref: str
) -> bytes:
    return codec.dumps(
        {
            "message_uuid": message_uuid,
            "to": msisdn(to),
            "from": msisdn(sender),
            "timestamp": iso(at_ms).replace("Z", ".000Z"),
            "status": status,
            "channel": "sms",
            "client_ref": client_ref,
            "usage": {"currency": "EUR", "price": "0.0725"},
        }
    )


# -- generic lead post (§3.4): one lead, JSON ---------------------------------------------


def lead_body(lead: Mapping[str, Any]) -> bytes:
    return codec.dumps(dict(lead))
