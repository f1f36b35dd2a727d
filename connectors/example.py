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
from consentinel.connectors.contract import ConfigField, Connector, Instance, Output, Request
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import ConsentAction, UsageKind

KINDS = {"delivered": UsageKind.DELIVER, "opened": UsageKind.OPEN}


class PingmailConnector(Connector):
    name: ClassVar[str] = "pingmail"
    title: ClassVar[str] = "Pingmail (example): delivery and unsubscribe webhooks"
    produces: ClassVar[str] = "usage+consent"
    auth: ClassVar[str] = "Authorization: Bearer <token>"
    events: ClassVar[tuple[str, ...]] = (*KINDS, "unsubscribed")
    event_time: ClassVar[str] = '"at" (Unix seconds) of each event'
    config_schema: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("token", "the bearer token set on the webhook", required=True, secret=True),
        ConfigField("token_previous", "the previous token, while rotating", secret=True),
    )

    def verify(self, request: Request) -> None:
        """Constant-time token check; raises ``AuthenticationFailed``."""
        verify_header_token(tk.secrets(self.instance, "token"), request.headers)

    def map_request(self, request: Request) -> Output:
        """Each item alone: a bad one becomes an ``ItemRejected``, the others events."""
        emit = tk.Emitter(self, tk.received_ms(request))
        body = tk.json_body(request.body, "the body")
        return tk.map_batch(body, "the body", lambda i, item: self._item(emit, item, i))

    def _item(self, emit: tk.Emitter, item: dict[str, Any], index: int) -> Output:
        kind, event_id = item.get("type"), item.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise InvalidInput("missing_field", f"event[{index}].id is missing")
        address = self.edge.address(str(item.get("to") or ""), "email")
        at = tk.times.seconds_ms(item.get("at"), f"event[{index}].at")
        if kind == "unsubscribed":  # the platform's own id: a redelivery keeps the same ids
            return Output(consent=[emit.consent((event_id,), ConsentAction.WITHDRAW, address, at)])
        if kind not in KINDS:
            raise InvalidInput("unknown_event", f"event[{index}].type is not a Pingmail event")
        return Output(usage=[emit.usage((event_id,), KINDS[kind], address, at)])


def sign(request: Request, instance: Instance) -> Request:
    """``request`` as Pingmail would send it for ``instance`` (tests, dry runs)."""
    token = instance.secret("token").decode("utf-8")
    return request.with_headers({"authorization": f"Bearer {token}"})
