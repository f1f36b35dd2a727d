"""HTTP Basic credentials, e.g. ``https://user:pass@host/path`` callback URLs (Brevo, Mailjet).

Senders put the URL's userinfo into an ``Authorization: Basic`` header; this checks it. Both
user name and password are compared in constant time, and both always are.
"""

import base64
from collections.abc import Mapping

from ._common import Secrets, basic_credentials, get_header, matches_any, secret_list, to_bytes
from .errors import AuthenticationFailed

SCHEME = "basic"
AUTHORIZATION_HEADER = "Authorization"


def basic_auth_header(username: str, password: str) -> str:
    """The ``Authorization`` header value for ``username``/``password`` (UTF-8)."""
    raw = to_bytes(username) + b":" + to_bytes(password)
    return "Basic " + base64.b64encode(raw).decode("ascii")


def verify_basic_auth(username: str, password: Secrets, headers: Mapping[str, str]) -> None:
    """Check ``Authorization: Basic``; return None or raise :class:`AuthenticationFailed`.

    Several passwords may be given while one is rotated. Reasons: ``missing_credentials``,
    ``malformed_credentials``, ``bad_credentials``.
    """
    passwords = secret_list(password, scheme=SCHEME, what="password")
    users = secret_list(username, scheme=SCHEME, what="user name")
    value = (get_header(headers, AUTHORIZATION_HEADER) or "").strip()
    if not value:
        raise AuthenticationFailed(
            "missing_credentials", "no Authorization header (Basic credentials)", scheme=SCHEME
        )
    user, secret = basic_credentials(value, scheme=SCHEME, what="credentials")
    user_ok = matches_any(users, user)
    password_ok = matches_any(passwords, secret)
    if not (user_ok and password_ok):
        raise AuthenticationFailed(
            "bad_credentials",
            "the Basic user name or password is wrong; compare with the callback URL configured "
            "at the platform",
            scheme=SCHEME,
        )
