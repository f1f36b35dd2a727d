"""The RFC 8058 one-click unsubscribe endpoint, hosted by consentinel (connectors.md §1.6).

Our senders put ``List-Unsubscribe: <https://…/u/<token>>`` and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click`` into each message (:func:`issue_token`, :func:`unsubscribe_url`,
:func:`list_unsubscribe_headers`). The mailbox provider then POSTs the body
``List-Unsubscribe=One-Click`` (form-urlencoded or multipart) to that URL, without cookies:
the URL alone says who and what.

The token: ``<payload>.<mac>``, both base64url without padding. The payload is compact JSON
``{"v": 1, "l": list id, "c": controller, "k": subject key, "h": masked hint,
"i": issued at, "x": expires at}`` (Unix seconds): it holds the HMAC pseudonym and the
masked hint, never the address, so neither a token nor a log line that shows it can be
turned back into an address. The mac is HMAC-SHA256 with the instance secret
``token_key`` (``token_key_previous`` accepted while rotating) over a fixed domain prefix
and the payload text. ``x`` comes from the ``token_ttl_days`` option (default 400; the
link must keep working for long after the mail was sent).

Requests: the token is the last path segment (``/u/<token>``) or the query parameter
``token``. A GET (a person following the link, or a scanner prefetching it) gets a neutral
page with a button that POSTs the one-click body; it reveals nothing and changes nothing.
A missing, malformed or forged token fails ``verify`` (401). An authentic but expired token
is ``InvalidInput("expired_token")``: the request is kept in dead letters, where a person
can still honour it. A body other than ``List-Unsubscribe=One-Click`` is ``missing_field``.

Mapping: ConsentEvent withdraw for the token's controller and list (purpose
``purpose_map[list id]``, unmapped → ``unmapped_purposes``; scope the list; proof method
``one_click_unsubscribe``, collected at the POST time, the provider's IP hash, and
``sha256:<hex>`` of the token as receipt: the token itself is never stored, it would
replay) + UsageEvent ``unsubscribe_link`` (audit). Both occur at the POST time; ids derive
from the token, so a provider retrying the POST gives the same ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth.one_click import (
    MAX_TOKEN,
    is_one_click_body,
    one_click_mac,
    one_click_token,
    verify_one_click_token,
)
from consentinel.connectors.builtin import _email as em
from consentinel.streams.events.errors import ConsentinelError, InvalidInput
from consentinel.streams.events.records import ConsentAction, UsageKind

DEFAULT_TTL_DAYS = 400

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Unsubscribe</title></head>
<body><form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<p>Stop receiving this list?</p><button type="submit">Unsubscribe</button></form></body></html>
"""


def issue_token(
    instance: tk.Instance,
    address: tk.Address | str,
    list_id: str,
    *,
    edge: tk.Edge | None = None,
    issued_at: int | None = None,
    controller: str | None = None,
) -> str:
    """A signed one-click token for ``address`` on ``list_id``.

    ``address`` is an :class:`Address` already keyed, or a raw address together with the
    ``edge`` that keys it (the raw form goes no further than ``edge.address``).
    ``issued_at`` (Unix seconds, default now) makes each message's token distinct.
    """
    if isinstance(address, str):
        if edge is None:
            raise ConsentinelError("issue_token: give the Edge that keys a raw address")
        address = edge.address(address, "email")
    now = int(time.time()) if issued_at is None else int(issued_at)
    ttl_days = instance.options.get("token_ttl_days", DEFAULT_TTL_DAYS)
    payload: dict[str, Any] = {
        "v": 1,
        "l": list_id,
        "c": controller or instance.controller,
        "k": address.key,
        "h": address.hint,
        "i": now,
    }
    if ttl_days:
        payload["x"] = now + int(float(ttl_days) * 86_400)
    return one_click_token(instance.secret("token_key"), payload)


def unsubscribe_url(instance: tk.Instance, token: str) -> str:
    """``<public_url>/<token>``: the HTTPS URI for ``List-Unsubscribe``."""
    if not instance.public_url:
        raise ConsentinelError(f"instance {instance.name!r}: set public_url to issue links")
    return instance.public_url.rstrip("/") + "/" + quote(token, safe="")


def list_unsubscribe_headers(instance: tk.Instance, token: str) -> dict[str, str]:
    """The two headers RFC 8058 asks for (both must be covered by the DKIM signature)."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(instance, token)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _presented(request: tk.Request) -> str | None:
    token = request.param("token") or em.path_token(request)
    return token if token and len(token) <= MAX_TOKEN else None


def check_token(instance: tk.Instance, token: str | None) -> dict[str, Any]:
    """The token's payload when its mac is ours; raises ``AuthenticationFailed`` when it is
    missing, malformed or forged. Expiry is not checked here (see the connector)."""
    return verify_one_click_token(tk.secrets(instance, "token_key"), token)


def one_click_body(request: tk.Request) -> bool:
    """Whether the body is ``List-Unsubscribe=One-Click`` (form-urlencoded or multipart)."""
    return is_one_click_body(request.header("content-type"), request.body)


class OneClickUnsubscribeConnector(tk.Connector):
    name: ClassVar[str] = "one_click_unsubscribe"
    title: ClassVar[str] = "RFC 8058 one-click unsubscribe endpoint (hosted by consentinel)"
    produces: ClassVar[str] = "usage+consent"
    auth: ClassVar[str] = "HMAC-SHA256-signed opaque token in the URL"
    events: ClassVar[tuple[str, ...]] = ("one_click_unsubscribe",)
    event_time: ClassVar[str] = "receive time of the POST (the unsubscription itself)"
    config_schema: ClassVar[tuple[tk.ConfigField, ...]] = (
        *tk.rotating_secret("token_key", "key that signs the tokens in List-Unsubscribe URLs"),
        tk.option(
            "token_ttl_days", "number", "how long a link works (days; 0: forever)", DEFAULT_TTL_DAYS
        ),
    )

    def handshake(self, request: tk.Request) -> tk.Response | None:
        if request.method.upper() in ("GET", "HEAD"):
            return tk.Response(200, PAGE, "text/html")  # aiohttp adds the charset
        return None

    def verify(self, request: tk.Request) -> None:
        check_token(self.instance, _presented(request))

    def map_request(self, request: tk.Request) -> tk.Output:
        token = _presented(request) or ""
        payload = check_token(self.instance, token)
        if not one_click_body(request):
            raise InvalidInput("missing_field", "the body is not List-Unsubscribe=One-Click")
        received = tk.received_ms(request)
        expires = payload.get("x")
        if isinstance(expires, int) and not isinstance(expires, bool) and expires * 1000 < received:
            raise InvalidInput(
                "expired_token",
                "the one-click token has expired; honour the unsubscribe by hand from the "
                "dead-letter record, or raise token_ttl_days",
            )
        list_id, controller = payload.get("l"), payload.get("c")
        key, hint = payload.get("k"), payload.get("h")
        if not all(isinstance(v, str) and v for v in (list_id, controller, key, hint)):
            raise InvalidInput(
                "missing_field", "the one-click token lacks list, controller or subject"
            )
        assert isinstance(list_id, str) and isinstance(controller, str)
        address = tk.Address(str(key), str(hint))
        digest = hashlib.sha256(token.encode("ascii")).hexdigest()
        at = tk.Emitter(self, received).at(("one_click", digest), address, received)
        user_agent = request.header("user-agent")
        attributes = {"user_agent": user_agent[:200] if user_agent else None}
        return tk.Output(
            usage=[
                at.usage(
                    UsageKind.UNSUBSCRIBE_LINK,
                    controller=controller,
                    source_event_type="one_click",
                    list_id=list_id,
                    attributes=attributes,
                )
            ],
            consent=[
                at.proven(
                    ConsentAction.WITHDRAW,
                    controller=controller,
                    vendor_purposes=[list_id],
                    scope=list_id,
                    method="one_click_unsubscribe",
                    collection_point=f"list-unsubscribe:{list_id}",
                    ip_hash=em.ip_hash(request.remote),
                    vendor_receipt=f"sha256:{digest}",
                    attributes=attributes,
                )
            ],
        )


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """The request with its URL token re-signed with the instance's ``token_key`` (the
    token's payload is kept; a request without a token gets nothing to sign)."""
    token = _presented(request)
    if not token or "." not in token:
        return request
    payload = token.partition(".")[0]
    fresh = f"{payload}.{one_click_mac(instance.secret('token_key'), payload)}"
    parts = urlsplit(request.url)
    if request.param("token") is not None:
        return request.with_query({"token": fresh})
    path = parts.path[: parts.path.rfind(token)] + fresh if token in parts.path else parts.path
    url = urlunsplit(parts._replace(path=path))
    req_path = request.path.replace(token, fresh) if request.path else path
    return dataclasses.replace(request, url=url, path=req_path)
