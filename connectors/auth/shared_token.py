"""Shared-secret tokens: in the URL (path or query), in a header, or in a body field.

For platforms that sign nothing (Mailchimp Marketing, Brevo, Mailjet, CM.com, Didomi without
OAuth; Google Ads' ``google_key`` body field): an unguessable per-tenant token, compared in
constant time. Several tokens may be accepted at once while one is rotated.
"""

from collections.abc import Mapping
from urllib.parse import parse_qs

from ._common import (
    MAX_FORM_FIELDS,
    Secrets,
    get_header,
    matches_any,
    secret_list,
    too_many_fields,
    url_query,
)
from .errors import AuthenticationFailed

SCHEME = "token"


def verify_shared_token(secret: Secrets, presented: str | None, *, name: str = "token") -> None:
    """Check a token the connector extracted itself (a path segment, a body field such as
    ``google_key``); ``name`` only labels the error message. Reasons: ``missing_credentials``,
    ``bad_credentials``."""
    tokens = secret_list(secret, scheme=SCHEME, what=name)
    if presented is None or not presented:
        raise AuthenticationFailed("missing_credentials", f"the {name} is missing", scheme=SCHEME)
    if not matches_any(tokens, presented):
        raise AuthenticationFailed(
            "bad_credentials",
            f"the {name} does not match the one configured for this connector",
            scheme=SCHEME,
        )


def verify_url_token(secret: Secrets, url: str, *, param: str = "token") -> None:
    """Check the query parameter ``param`` of ``url`` (the first one, if repeated).

    A query of more than :data:`~._common.MAX_FORM_FIELDS` parameters is refused
    (``malformed_request``); a malformed host in ``url`` does not matter. Never blocks."""
    try:
        query = parse_qs(url_query(url), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise too_many_fields(SCHEME, MAX_FORM_FIELDS) from None
    values = query.get(param)
    verify_shared_token(secret, values[0] if values else None, name=f"{param!r} URL parameter")


def verify_header_token(
    secret: Secrets,
    headers: Mapping[str, str],
    *,
    header: str = "Authorization",
    auth_scheme: str | None = "Bearer",
) -> None:
    """Check a static token in ``header``: ``"<auth_scheme> <token>"`` (``Authorization:
    Bearer ...`` by default) or, with ``auth_scheme=None``, the bare header value (a custom
    header such as ``X-Webhook-Token``)."""
    value = (get_header(headers, header) or "").strip()
    if auth_scheme is not None and value:
        kind, _, rest = value.partition(" ")
        if kind.lower() != auth_scheme.lower():
            raise AuthenticationFailed(
                "malformed_credentials",
                f"the {header} header is not '{auth_scheme} <token>'",
                scheme=SCHEME,
            )
        value = rest.strip()
    verify_shared_token(secret, value or None, name=f"token in the {header} header")
