"""consentinel's own one-click unsubscribe token, for RFC 8058 links (connectors.md §1.6).

A token is ``<payload>.<mac>``, both base64url without padding: the payload is the compact
JSON the issuer chose, the mac HMAC-SHA256 over a fixed domain prefix and the payload text.
A token is authentic when the mac of one of the keys (several while rotating) matches;
what the payload says (expiry, list, subject) is the connector's to judge.
"""

import binascii
import hashlib
import hmac
from collections.abc import Mapping
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Final
from urllib.parse import parse_qsl

from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput

from . import _common as c
from .errors import AuthenticationFailed

SCHEME = "one_click"
MAX_TOKEN: Final = 2048
_DOMAIN = b"consentinel-one-click-v1."


def one_click_mac(key: c.Secret, payload: str) -> str:
    """The mac of an encoded payload (the part of a token before the dot)."""
    mac = hmac.new(c.to_bytes(key), _DOMAIN + payload.encode("ascii"), hashlib.sha256)
    return c.b64url(mac.digest())


def one_click_token(key: c.Secret, payload: Mapping[str, Any]) -> str:
    """A token carrying ``payload`` (encoded by the one codec), signed with ``key``."""
    text = c.b64url(codec.dumps(dict(payload)))
    return f"{text}.{one_click_mac(key, text)}"


def _fail(reason: Any, message: str) -> AuthenticationFailed:
    return AuthenticationFailed(reason, message, scheme=SCHEME)


def verify_one_click_token(keys: c.Secrets, token: str | None) -> dict[str, Any]:
    """The token's payload when its mac is ours; raises :class:`AuthenticationFailed` when it
    is missing, malformed, forged, or its payload is not version 1. Pure CPU."""
    secrets = c.secret_list(keys, scheme=SCHEME, what="token key")
    if not token:
        raise _fail("missing_credentials", "the one-click token is missing from the URL")
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac or not payload.isascii() or not mac.isascii():
        raise _fail("malformed_credentials", "the one-click token is not <payload>.<mac>")
    expected = [one_click_mac(key, payload).encode("ascii") for key in secrets]
    if not c.matches_any(expected, mac):
        raise _fail("bad_credentials", "the one-click token was not issued with this key")
    try:
        data = codec.loads(c.unb64url(payload))
    except (InvalidInput, ValueError, binascii.Error):
        data = None
    if not isinstance(data, dict) or data.get("v") != 1:
        raise _fail("malformed_credentials", "the one-click token payload is not version 1")
    return data


def is_one_click_body(content_type: str | None, body: bytes) -> bool:
    """Whether a POST body is ``List-Unsubscribe=One-Click`` (form-urlencoded or multipart),
    the one body RFC 8058 lets a mailbox provider send."""
    ctype = (content_type or "").lower()
    if ctype.startswith("multipart/"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        for part in message.iter_parts() if message.is_multipart() else ():
            if part.get_param("name", header="content-disposition") == "List-Unsubscribe":
                value = part.get_payload(decode=True)
                if isinstance(value, bytes) and value.strip() == b"One-Click":
                    return True
        return False
    pairs = parse_qsl(body.decode("utf-8", "replace").strip(), keep_blank_values=True)
    return ("List-Unsubscribe", "One-Click") in pairs
