"""Segment Engage audiences synced to a destination: each user entering an audience is a list
transfer of their address to the destination's owner.

Transport: Segment's Webhooks destination, one event per POST (Engage sends audiences to
event destinations as Track calls ``Audience Entered`` / ``Audience Exited``, or as Identify
calls setting the audience key to true / false), signed with the destination's shared
secret: ``X-Signature`` = hex HMAC-SHA1 of the raw body (``shared_secret``, and
``shared_secret_previous`` while rotating). Batch posts (signed over their first event
only) are refused: configure the destination without batching.

What a payload says [Segment docs, engage/using-engage-data.md, "Audience generated events";
connections/destinations/catalog/webhooks, "Authentication"]:

- ``context.personas``: ``computation_class`` (``audience``), ``computation_id``,
  ``computation_key`` (the audience key), ``space_id``;
- Track: ``event`` ``Audience Entered`` / ``Audience Exited``, ``properties.audience_key``,
  ``properties.<audience_key>`` true / false; the e-mail in ``context.traits.email``;
- Identify: ``traits.<audience_key>`` true / false, the e-mail in ``traits.email``;
- ``messageId`` (the event's identity: a redelivery repeats it), ``timestamp``.

Entering an audience gives one ``list_transfer`` usage per address (e-mail, and phone from
``phone`` when present) through ``_transfers``: the file is the audience key, the sender the
``sender`` option (the CDP workspace's owner; default the instance's controller), the
recipient ``recipients[audience key]`` else the ``recipient`` option (the destination's
owner), the purpose ``purpose_map[audience key]``. Exiting, and any event that is not an
audience's (pages, ordinary tracks, computed traits), gives nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth.hmac_header import (
    HmacHeaderScheme,
    hmac_header_signature,
    verify_hmac_header,
)
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel

from ._transfers import Transfer, name, transfer_usage

SCHEME = HmacHeaderScheme(header="X-Signature", algorithm="sha1", encoding="hex", tolerance=None)
ENTERED, EXITED = "Audience Entered", "Audience Exited"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class SegmentAudiencesConnector(tk.Connector):
    name = "segment_audiences"
    title = "Segment Engage audiences (Webhooks destination): audience syncs as list transfers"
    produces = "usage"
    auth = "X-Signature: hex HMAC-SHA1(shared secret, body)"
    events: ClassVar[tuple[str, ...]] = (ENTERED, EXITED, "identify (audience trait)")
    event_time: ClassVar[str] = '"timestamp" of the event'
    config_schema = (
        *tk.rotating_secret("shared_secret", "the Webhooks destination's shared secret"),
        tk.option("sender", "text", "who the CDP workspace belongs to (default: the controller)"),
        tk.option("recipient", "text", "the destination's owner, the audiences' recipient"),
        tk.option("recipients", "mapping", "audience key -> recipient, for mixed destinations"),
    )

    def verify(self, request: tk.Request) -> None:
        verify_hmac_header(
            SCHEME, tk.secrets(self.instance, "shared_secret"), request.body, request.headers
        )

    def map_request(self, request: tk.Request) -> tk.Output:
        body = tk.json_body(request.body, "the Segment event")
        if isinstance(body, list):
            raise InvalidInput(
                "batch_not_supported",
                "a batch of Segment events (its signature covers the first event only): "
                "turn batching off on the Webhooks destination",
            )
        if not isinstance(body, dict):
            raise InvalidInput("malformed_json", "the Segment event is not a JSON object")
        return self._event(body, tk.Emitter(self, tk.received_ms(request)))

    def _event(self, event: Mapping[str, Any], emit: tk.Emitter) -> tk.Output:
        context = _dict(event.get("context"))
        personas = _dict(context.get("personas"))
        kind = event.get("type")
        if personas.get("computation_class") not in ("audience", None) or kind not in (
            "track",
            "identify",
        ):
            return tk.Output()
        if kind == "track":
            if event.get("event") not in (ENTERED, EXITED):
                return tk.Output()
            props = _dict(event.get("properties"))
            key = name(props.get("audience_key") or personas.get("computation_key"), "audience")
            entered = event.get("event") == ENTERED
            traits = _dict(context.get("traits"))
        else:
            traits = _dict(event.get("traits"))
            key = name(personas.get("computation_key"), "context.personas.computation_key")
            if key is None or not isinstance(traits.get(key), bool):
                return tk.Output()  # an ordinary identify, not an audience's
            entered = traits[key] is True
        if key is None:
            raise InvalidInput("missing_field", "properties.audience_key is missing")
        if not entered:
            return tk.Output()
        message_id = name(event.get("messageId"), "messageId", required=True)
        occurred = tt.iso_ms(event.get("timestamp"), "timestamp")
        transfer = self._transfer(key, personas)
        out = tk.Output()
        for address, channel in self._addresses(traits):
            out.usage.append(
                transfer_usage(
                    self,
                    emit,
                    transfer,
                    (message_id, channel),
                    address,
                    occurred,
                    channel=channel,
                    source_event_type=str(event.get("event") or "identify"),
                    attributes={
                        "audience_id": name(personas.get("computation_id"), "computation_id"),
                        "space_id": name(personas.get("space_id"), "space_id"),
                    },
                )
            )
        return out

    def _transfer(self, key: str, personas: Mapping[str, Any]) -> Transfer:
        options = self.instance.options
        recipients = options.get("recipients")
        recipient = (recipients.get(key) if isinstance(recipients, dict) else None) or options.get(
            "recipient"
        )
        if not isinstance(recipient, str) or not recipient.strip():
            raise InvalidInput(
                "missing_field",
                f"audience {key}: no recipient; set the recipient option (or recipients) of "
                f"the instance",
            )
        sender = options.get("sender") or self.instance.controller
        return Transfer(
            sender=str(sender),
            recipient=recipient.strip(),
            vendor_purpose=key,
            file_id=key,
            kind="audience_sync",
        )

    def _addresses(self, traits: Mapping[str, Any]) -> list[tuple[tk.Address, Channel]]:
        out: list[tuple[tk.Address, Channel]] = []
        email, phone = traits.get("email"), traits.get("phone")
        if isinstance(email, str) and email.strip():
            out.append((self.edge.address(email, "email"), Channel.EMAIL))
        if isinstance(phone, str) and phone.strip():
            out.append((self.edge.address(phone, "phone"), Channel.SMS))
        if not out:
            raise InvalidInput("missing_address", "the event has no traits.email nor traits.phone")
        return out


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` with the ``X-Signature`` Segment's Webhooks destination would add."""
    value = hmac_header_signature(SCHEME, instance.secret("shared_secret"), request.body)
    return request.with_headers({"x-signature": value})
