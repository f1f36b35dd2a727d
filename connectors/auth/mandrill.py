"""Mailchimp Transactional (Mandrill) ``X-Mandrill-Signature`` (connectors.md §1.2).

HMAC-SHA1, keyed with the webhook key (not the API key), over the webhook URL exactly as
registered in Mandrill followed by each POST parameter name and its value, names sorted, no
separators; Base64 with padding. In practice the only parameter is ``mandrill_events``.
"""

import base64
import hashlib
import hmac
from collections.abc import Mapping

from . import _common as c
from .errors import AuthenticationFailed

SCHEME = "mandrill"
SIGNATURE_HEADER = "X-Mandrill-Signature"


def mandrill_signature(webhook_key: c.Secret, url: str, params: c.FormParams) -> str:
    """The ``X-Mandrill-Signature`` value for ``url`` and the POST ``params``.

    A repeated parameter name counts once, with its last value (what PHP's ``$_POST``, which
    Mandrill's reference code uses, would see).
    """
    last: dict[str, str] = {}
    for name, value in c.form_pairs(params):
        last[name] = value
    signed = url + "".join(name + last[name] for name in sorted(last))
    mac = hmac.new(c.to_bytes(webhook_key), c.to_bytes(signed), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def verify_mandrill(
    webhook_key: c.Secrets,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    params: c.FormParams | None = None,
) -> None:
    """Check a Mandrill webhook POST; return None or raise :class:`AuthenticationFailed`.

    ``url`` must be the URL as registered in Mandrill, including any query string and any
    ``user:pass@`` part (make it a per-tenant setting). Parameters are parsed from the raw form
    ``body`` unless ``params`` is given. The unsigned HEAD request Mandrill sends when the hook
    is created is not a webhook delivery: answer it 200 without calling this. Reasons:
    ``missing_signature``, ``malformed_request`` (more than
    :data:`~._common.MAX_FORM_FIELDS` parameters, refused before decoding), ``bad_signature``.
    Pure CPU (one pass to decode the form, one HMAC per key), never blocks.
    """
    keys = c.secret_list(webhook_key, scheme=SCHEME, what="webhook key")
    presented = c.require_header(headers, SIGNATURE_HEADER, scheme=SCHEME)
    if params is not None:
        pairs = c.bounded_pairs(params, scheme=SCHEME)
    else:
        pairs = c.parse_form(body, scheme=SCHEME)
    expected = [mandrill_signature(key, url, pairs).encode("ascii") for key in keys]
    if not c.matches_any(expected, presented):
        raise AuthenticationFailed(
            "bad_signature",
            f"{SIGNATURE_HEADER} does not match; check the webhook key (not the API key) and that "
            "the URL is exactly the one registered in Mandrill",
            scheme=SCHEME,
        )
