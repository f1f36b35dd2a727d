"""The worked example of connectors/README.md: "Pingmail", an imaginary e-mail platform.

Pingmail posts a JSON array of events with ``Authorization: Bearer <token>``:

    [{"id": "ev-1", "type": "delivered", "at": 1767225600, "to": "ana@example.org"},
     {"id": "ev-2", "type": "unsubscribed", "at": 1767225700, "to": "ana@example.org"}]

It is not registered as a built-in: the guide's test registers it and runs the
conformance suite on it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import verify_header_token
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import ConsentAction, UsageKind

KINDS = {"delivered": UsageKind.DELIVER, "opened": UsageKind.OPEN}


class PingmailConnector(tk.Connector):
    name = "pingmail"
    title = "Pingmail (example): delivery and unsubscribe webhooks"
    produces = "usage+consent"
    auth = "Authorization: Bearer <token>"
    events: ClassVar[tuple[str, ...]] = (*KINDS, "unsubscribed")
    event_time: ClassVar[str] = '"at" (Unix seconds) of each event'
    config_schema = (
        *tk.rotating_secret("token", "the bearer token set on the webhook"),
        tk.option("account", "text", "the Pingmail account, reported as sender"),
    )

    def verify(self, request: tk.Request) -> None:
        """Constant-time token check (``token_previous`` too); raises ``AuthenticationFailed``."""
        verify_header_token(tk.secrets(self.instance, "token"), request.headers)

    def map_request(self, request: tk.Request) -> tk.Output:
        """Each item alone: a bad one becomes an ``ItemRejected``, the others events."""
        emit = tk.Emitter(self, tk.received_ms(request))
        body = tk.json_body(request.body, "the body")
        return tk.map_batch(body, "the body", lambda i, item: self._item(emit, item, i))

    def _item(self, emit: tk.Emitter, item: dict[str, Any], index: int) -> tk.Output:
        kind, event_id = item.get("type"), item.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise InvalidInput("missing_field", f"event[{index}].id is missing")
        address = self.edge.address(str(item.get("to") or ""), "email")
        when = tk.times.seconds_ms(item.get("at"), f"event[{index}].at")
        at = emit.at((event_id,), address, when)  # the platform's own id: redelivery, same ids
        if kind == "unsubscribed":
            return tk.Output(consent=[at.consent(ConsentAction.WITHDRAW)])
        if kind not in KINDS:
            raise InvalidInput("unknown_event", f"event[{index}].type is not a Pingmail event")
        sender = tk.option_text(self.instance, "account") or None
        return tk.Output(usage=[at.usage(KINDS[kind], sender=sender)])


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` as Pingmail would send it for ``instance`` (tests, dry runs)."""
    token = instance.secret("token").decode("utf-8")
    return request.with_headers({"authorization": f"Bearer {token}"})
