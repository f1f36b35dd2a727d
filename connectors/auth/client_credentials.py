"""OAuth 2.0 client credentials "in reverse" (RFC 6749 §4.4): the platform is the client.

Didomi authenticates its webhooks this way (connectors.md §4.1): we give it a client id and
secret; before it posts, it asks OUR token endpoint for an access token
(``grant_type=client_credentials``) and sends the token as ``Authorization: Bearer``.

Issuer: stateless and bounded. A token is ``<payload>.<mac>`` (base64url, no padding):
the payload ``v1|<audience>|<expiry, Unix s>``, the mac HMAC-SHA256 over a fixed domain
prefix and the payload, keyed by a key derived from the client secret and the audience (the
connector instance). Nothing is stored: a token is valid while its mac matches one of the
secrets (``client_secret`` and, while rotating, its previous value), its audience is this
instance and its expiry is in the future and at most ``ttl`` ahead. Rotating the secret
retires every token at once (they live ``ttl`` seconds at most anyway).

The client authenticates at the token endpoint with HTTP Basic (``client_secret_basic``)
or with ``client_id``/``client_secret`` form fields (``client_secret_post``); every
comparison is constant-time, both the id and the secret always compared. Errors are the
RFC's: ``invalid_request`` / ``unsupported_grant_type`` (:class:`InvalidInput`, a 400)
and ``invalid_client`` (:class:`AuthenticationFailed`, a 401). Never anything else, for any
input: a token request is unauthenticated input. No message carries a secret or a token.
"""

import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput

from . import _common as c
from .errors import AuthenticationFailed

SCHEME = "client_credentials"
#: The largest token request read (a real one is under 200 bytes).
MAX_REQUEST_BYTES: Final = 4096
#: The longest bearer token looked at (ours are under 200 characters).
MAX_TOKEN: Final = 512
DEFAULT_TTL_S: Final = 3600
MAX_TTL_S: Final = 86_400
_DOMAIN = b"consentinel-client-credentials-v1."
_VERSION = "v1"


def _keys(secrets: c.Secrets, audience: str) -> tuple[bytes, ...]:
    """The token-signing keys: one per client secret, bound to the audience."""
    return tuple(
        hmac.new(secret, b"token-key|" + c.to_bytes(audience), hashlib.sha256).digest()
        for secret in c.secret_list(secrets, scheme=SCHEME, what="client secret")
    )


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _DOMAIN + payload, hashlib.sha256).digest()


def issue_token(secrets: c.Secrets, audience: str, *, now_s: int, ttl_s: int) -> str:
    """A token for ``audience`` valid ``ttl_s`` seconds from ``now_s``, signed with the
    first (current) secret."""
    payload = f"{_VERSION}|{audience}|{now_s + ttl_s}".encode()
    return f"{c.b64url(payload)}.{c.b64url(_mac(_keys(secrets, audience)[0], payload))}"


def _client(
    headers: Mapping[str, str], fields: Mapping[str, str]
) -> tuple[str | bytes, str | bytes]:
    """(client id, client secret) from Basic credentials, else from the form fields."""
    authorization = (c.get_header(headers, "Authorization") or "").strip()
    if authorization:
        user, secret = c.basic_credentials(authorization, scheme=SCHEME, what="client credentials")
        return user, secret
    client_id, client_secret = fields.get("client_id"), fields.get("client_secret")
    if client_id is None or client_secret is None:
        raise AuthenticationFailed(
            "missing_credentials",
            "the token request has no client credentials (Basic, or client_id and "
            "client_secret fields)",
            scheme=SCHEME,
        )
    return client_id, client_secret


def _fields(body: bytes, content_type: str) -> dict[str, str]:
    """The token request's parameters: a form body (the RFC's), or a JSON object [U]."""
    if "json" in content_type.lower():
        try:
            obj = codec.loads(body)
        except InvalidInput:
            obj = None
        if not isinstance(obj, dict) or len(obj) > c.MAX_FORM_FIELDS:
            raise InvalidInput("invalid_request", "the token request is not a JSON object")
        return {str(k): v for k, v in obj.items() if isinstance(v, str)}
    try:
        pairs = c.parse_form(body, scheme=SCHEME)
    except AuthenticationFailed:
        raise InvalidInput("invalid_request", "the token request has too many fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidInput("invalid_request", f"the token request repeats {name!r}")
        fields[name] = value
    return fields


def token_response(
    *,
    client_id: str,
    secrets: c.Secrets,
    audience: str,
    body: bytes,
    headers: Mapping[str, str],
    now_s: int,
    ttl_s: int = DEFAULT_TTL_S,
) -> bytes:
    """The JSON answer to a token request (``access_token``, ``token_type``,
    ``expires_in``), or :class:`InvalidInput` (400) / :class:`AuthenticationFailed` (401)."""
    if len(body) > MAX_REQUEST_BYTES:
        raise InvalidInput(
            "invalid_request", f"the token request is over {MAX_REQUEST_BYTES} bytes"
        )
    content_type = c.get_header(headers, "Content-Type") or ""
    fields = _fields(body, content_type)
    presented_id, presented_secret = _client(headers, fields)
    id_ok = c.matches_any((c.to_bytes(client_id),), presented_id)
    secret_ok = c.matches_any(
        c.secret_list(secrets, scheme=SCHEME, what="client secret"), presented_secret
    )
    if not (id_ok and secret_ok):
        raise AuthenticationFailed(
            "bad_credentials",
            "the client id or secret is wrong; compare with the credentials given to the platform",
            scheme=SCHEME,
        )
    grant = fields.get("grant_type")
    if grant is None:
        raise InvalidInput("invalid_request", "the token request has no grant_type")
    if grant != "client_credentials":
        raise InvalidInput(
            "unsupported_grant_type", "only grant_type=client_credentials is supported"
        )
    ttl = max(1, min(int(ttl_s), MAX_TTL_S))
    token = issue_token(secrets, audience, now_s=now_s, ttl_s=ttl)
    answer: bytes = codec.dumps({"access_token": token, "token_type": "Bearer", "expires_in": ttl})
    return answer


def verify_client_token(
    secrets: c.Secrets,
    headers: Mapping[str, str],
    *,
    audience: str,
    now_s: int,
    ttl_s: int = DEFAULT_TTL_S,
) -> None:
    """Check ``Authorization: Bearer <token>`` issued by :func:`token_response` for
    ``audience``; raise :class:`AuthenticationFailed` (``missing_credentials``,
    ``malformed_credentials``, ``bad_credentials``, ``stale_timestamp``)."""
    keys = _keys(secrets, audience)
    value = (c.get_header(headers, "Authorization") or "").strip()
    if not value:
        raise AuthenticationFailed(
            "missing_credentials", "no Authorization: Bearer access token", scheme=SCHEME
        )
    kind, _, token = value.partition(" ")
    token = token.strip()
    if kind.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
        raise AuthenticationFailed(
            "malformed_credentials", "the Authorization header is not a Bearer token", scheme=SCHEME
        )
    body, sep, mac_text = token.partition(".")
    try:
        payload, mac = c.unb64url(body), c.unb64url(mac_text)
    except (ValueError, binascii.Error):
        payload, mac = b"", b""
    if not sep or not payload:
        raise AuthenticationFailed(
            "malformed_credentials",
            "the access token is not one this endpoint issued",
            scheme=SCHEME,
        )
    found = False
    for key in keys:
        found |= hmac.compare_digest(_mac(key, payload), mac)
    if not found:
        raise AuthenticationFailed(
            "bad_credentials",
            "the access token's signature does not match (issued for another instance, or "
            "before the client secret was rotated): the platform must ask for a new one",
            scheme=SCHEME,
        )
    version, _, rest = payload.decode("utf-8", "replace").partition("|")
    named, _, expiry_text = rest.rpartition("|")
    if version != _VERSION or named != audience or not expiry_text.isdigit():
        raise AuthenticationFailed(
            "malformed_credentials",
            "the access token is not one this endpoint issued",
            scheme=SCHEME,
        )
    expiry = int(expiry_text)
    if expiry <= now_s or expiry > now_s + min(ttl_s, MAX_TTL_S):
        raise AuthenticationFailed(
            "stale_timestamp",
            "the access token has expired (or outlives the configured lifetime): the platform "
            "must ask for a new one",
            scheme=SCHEME,
        )
