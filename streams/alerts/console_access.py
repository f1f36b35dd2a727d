"""Who may use the console: the token, the session cookie and the CSRF value derived from it.

Every route needs the token (``CONSENTINEL_TOKEN``). Open the console once with
``?token=...``: it sets a session cookie (HttpOnly, SameSite=Strict, derived from the token,
not the token itself) and redirects to the same page without the token in the address.
Scripts may send ``Authorization: Bearer <token>`` instead. A POST with the cookie must also
carry the page's CSRF value (``X-Consentinel-CSRF``). Comparisons are constant-time; anything
else is 401.

Nothing here blocks: the middlewares compare strings and hand over to the handler.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from yarl import URL

log = logging.getLogger("consentinel.console")

COOKIE = "consentinel_console"
CSRF_HEADER = "X-Consentinel-CSRF"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Access:
    """The token and the two values derived from it (session cookie, CSRF)."""

    token: bytes

    def _derive(self, what: str) -> str:
        return hmac.new(
            self.token, f"consentinel-console:{what}".encode(), hashlib.sha256
        ).hexdigest()

    @property
    def session(self) -> str:
        return self._derive("session")

    @property
    def csrf(self) -> str:
        return self._derive("csrf")

    def token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self.token)

    def session_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(
            given.encode("utf-8"), self.session.encode()
        )

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self.csrf.encode())


ACCESS = web.AppKey("access", Access)

_UNAUTHORIZED = (
    "401: this console needs its token. Open the address `consentinel console` printed "
    "(it ends in ?token=...), or send `Authorization: Bearer <token>`. The token is "
    "CONSENTINEL_TOKEN (in development: the file under CONSENTINEL_HOME/secrets/dev-token)."
)


def _unauthorized(request: web.Request) -> web.Response:
    log.info("console: refused %s %s (no valid token)", request.method, request.path)
    return web.Response(status=401, text=_UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


def same_site(request: web.Request) -> URL:
    """The request's path as a redirect target that stays on this site: ``//evil.example/``
    (or ``/\\evil.example``) would be read by a browser as another host, so leading slashes
    and backslashes collapse into one ``/``."""
    return URL.build(path="/" + request.rel_url.path.lstrip("/\\"))


@web.middleware
async def auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """401 unless the request carries the token, or the session cookie (plus CSRF on a change)."""
    access: Access = request.app[ACCESS]
    bearer = request.headers.get("Authorization", "")
    if bearer.startswith("Bearer "):
        if not access.token_ok(bearer[7:].strip()):
            return _unauthorized(request)
        return await handler(request)
    if "token" in request.query:
        if not access.token_ok(request.query["token"]):
            return _unauthorized(request)
        if request.method != "GET":
            return await handler(request)
        # Once: the cookie from now on, and the token out of the address bar and history.
        query = {k: v for k, v in request.query.items() if k != "token"}
        location = same_site(request).with_query(query)
        resp = web.Response(status=303, headers={"Location": str(location)})
        resp.set_cookie(COOKIE, access.session, httponly=True, samesite="Strict", path="/")
        return resp
    if not access.session_ok(request.cookies.get(COOKIE)):
        return _unauthorized(request)
    if request.method not in ("GET", "HEAD") and not access.csrf_ok(
        request.headers.get(CSRF_HEADER)
    ):
        return web.Response(
            status=401,
            text="401: a change needs the page's CSRF value (reload the console and try again)",
        )
    return await handler(request)


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Adds ``SECURITY_HEADERS`` to every answer, errors included."""
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp
