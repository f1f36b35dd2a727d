"""What the console's and the router's HTTP servers write to their logs, and nothing more.

Two defaults of aiohttp leak what they must not:

- its access log prints the request line, query string included: ``GET /?token=...``
  wrote the console token in clear on every first visit. ``ScrubbedAccessLogger`` logs the
  method, the path and the query with the value of every secret-bearing parameter
  (``SECRET_PARAMS``) replaced by ``***``;
- on a request it cannot parse (a CONNECT with a body, garbage on the port), aiohttp's
  server logs the parser's exception at ERROR, and that message quotes the raw bytes it
  received, body included, address included. ``ProtocolErrorLogger`` logs such a request as
  one WARNING line with the peer and the kind of error (its class and status), never the
  bytes; an exception raised by one of our handlers (a real bug) stays at ERROR with its
  traceback.

Pass ``SERVER_OPTIONS`` to ``web.run_app``, ``web.AppRunner`` or aiohttp's ``TestServer``.
Nothing here blocks; logging goes through the standard ``logging`` handlers.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

#: Query parameters whose values never reach a log line.
SECRET_PARAMS = frozenset({"token", "access_token", "key", "secret", "signature", "sig"})

_server_log = logging.getLogger("consentinel.http")


def scrubbed_target(request: web.BaseRequest) -> str:
    """The request's path and query as they may be logged (secret values as ``***``)."""
    path = quote(request.rel_url.path, safe="/:@!$&'()*+,;=-._~")
    if not request.rel_url.raw_query_string:
        return path
    parts = []
    for name, value in request.rel_url.query.items():
        shown = "***" if name.lower() in SECRET_PARAMS else value
        parts.append(f"{quote(name, safe='')}={quote(shown, safe='*')}")
    return f"{path}?{'&'.join(parts)}"


class ScrubbedAccessLogger(AbstractAccessLogger):
    """One INFO line per request: peer, method, scrubbed target, status, bytes, seconds."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.3fs',
            request.remote or "-",
            request.method,
            scrubbed_target(request),
            response.status,
            response.body_length,
            time,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class ProtocolErrorLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, minus the raw bytes of requests it could not parse."""

    def __init__(self, logger: logging.Logger = _server_log) -> None:
        super().__init__(logger, {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            peer = args[0] if args else "?"
            self.logger.log(
                min(level, logging.WARNING),
                "refused a request from %s that is not valid HTTP (%s, answered %s); its "
                "bytes are not logged. A port scanner or a misconfigured client: nothing to "
                "do unless it repeats",
                peer,
                type(exc).__name__,
                exc.code,
            )
            return
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs


#: The keyword arguments that make an aiohttp server log only what it may.
SERVER_OPTIONS: dict[str, Any] = {
    "access_log_class": ScrubbedAccessLogger,
    "logger": ProtocolErrorLogger(),
}
