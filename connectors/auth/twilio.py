"""Twilio ``X-Twilio-Signature`` (connectors.md §2.1).

Form webhooks: HMAC-SHA1, keyed with the account Auth Token, over the full URL Twilio requested
followed by every parameter name and value (names sorted; each name's distinct values sorted;
no separators); Base64. JSON webhooks carry ``bodySHA256=<hex sha256 of the body>`` in the URL
query: that hash must match and the signature covers the URL alone.

As Twilio's own validator does, the URL is tried as given, without its port, and with the
scheme's default port added, because Twilio is not consistent about ports.

A form body must be parsed before it can be authenticated, so it is bounded first: at most
:data:`MAX_FORM_BYTES` bytes and :data:`~._common.MAX_FORM_FIELDS` parameters, else refused
unread (``malformed_request``). JSON bodies are only hashed, never parsed.
"""

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qs, urlsplit

from . import _common as c
from .errors import AuthenticationFailed

SCHEME = "twilio"
SIGNATURE_HEADER = "X-Twilio-Signature"
_DEFAULT_PORTS = {"https": 443, "http": 80}
MAX_FORM_BYTES: Final = 64 * 1024
"""Largest form body parsed to check its signature. Twilio's callbacks are a few KiB (a message
body is at most 1,600 characters; WhatsApp 4,096)."""


def twilio_signature(auth_token: c.Secret, url: str, params: c.FormParams = ()) -> str:
    """The ``X-Twilio-Signature`` value for ``url`` and form ``params`` (empty for JSON/GET)."""
    by_name: dict[str, set[str]] = {}
    for name, value in c.form_pairs(params):
        by_name.setdefault(name, set()).add(value)
    parts = [url]
    for name in sorted(by_name):
        parts.extend(name + value for value in sorted(by_name[name]))
    mac = hmac.new(c.to_bytes(auth_token), c.to_bytes("".join(parts)), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def url_variants(url: str) -> tuple[str, ...]:
    """``url`` as given, without its port, and with the default port (distinct, in that order)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return (url,)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):
        host = hostport[: hostport.find("]") + 1]
    else:
        host = hostport.split(":", 1)[0]
    variants = [url]
    prefix = f"{parts.scheme}://{parts.netloc}"
    if url.startswith(prefix):
        rest = url[len(prefix) :]
        if port is not None:
            variants.append(f"{parts.scheme}://{userinfo}{at}{host}{rest}")
        elif parts.scheme in _DEFAULT_PORTS:
            default = _DEFAULT_PORTS[parts.scheme]
            variants.append(f"{parts.scheme}://{userinfo}{at}{host}:{default}{rest}")
    return tuple(dict.fromkeys(variants))


def verify_twilio(
    auth_token: c.Secrets,
    url: str,
    headers: Mapping[str, str],
    body: bytes = b"",
    *,
    params: c.FormParams | None = None,
) -> None:
    """Check a Twilio webhook; return None or raise :class:`AuthenticationFailed`.

    ``url`` is the full URL Twilio called, query included, exactly as configured in Twilio (not
    rebuilt from proxy headers unless they reproduce it). ``body`` is the raw request body.
    Form parameters are parsed from ``body`` unless ``params`` is given (e.g. already parsed by
    the framework). When the URL carries ``bodySHA256`` (JSON webhooks) the body hash is
    checked and no parameters are signed. Several auth tokens may be given during rotation.
    Reasons: ``missing_signature``, ``malformed_request`` (form over :data:`MAX_FORM_BYTES` or
    :data:`~._common.MAX_FORM_FIELDS`), ``body_hash_mismatch``, ``bad_signature``. Pure CPU
    (bounded as above, one SHA-256 of a JSON body), never blocks.
    """
    tokens = c.secret_list(auth_token, scheme=SCHEME, what="auth token")
    presented = c.require_header(headers, SIGNATURE_HEADER, scheme=SCHEME)

    try:
        query = parse_qs(c.url_query(url), keep_blank_values=True, max_num_fields=c.MAX_FORM_FIELDS)
    except ValueError:
        raise c.too_many_fields(SCHEME, c.MAX_FORM_FIELDS) from None
    body_hashes = query.get("bodySHA256")
    pairs: list[tuple[str, str]] = []
    if body_hashes:
        actual = hashlib.sha256(body).hexdigest().encode("ascii")
        if not c.matches_any([actual], body_hashes[0].strip().lower()):
            raise AuthenticationFailed(
                "body_hash_mismatch",
                "the body does not match the bodySHA256 in the URL (was the body altered?)",
                scheme=SCHEME,
            )
    elif params is not None:
        pairs = c.bounded_pairs(params, scheme=SCHEME)
    elif len(body) > MAX_FORM_BYTES:
        raise AuthenticationFailed(
            "malformed_request",
            f"the form body is over {MAX_FORM_BYTES} bytes, larger than any Twilio callback; "
            "refused unread",
            scheme=SCHEME,
        )
    else:
        pairs = c.parse_form(body, scheme=SCHEME)

    expected = [
        twilio_signature(token, variant, pairs).encode("ascii")
        for token in tokens
        for variant in url_variants(url)
    ]
    if not c.matches_any(expected, presented):
        raise AuthenticationFailed(
            "bad_signature",
            f"{SIGNATURE_HEADER} does not match; check the auth token and that the URL is exactly "
            "the one configured in Twilio (scheme, host, path and query)",
            scheme=SCHEME,
        )
