"""``/metrics`` and ``/healthz`` of the router and the worker: loopback by default, token optional.

These endpoints say how busy the monitor is, which controllers raise incidents and how far
behind each consumer is: not for the whole network. They bind ``127.0.0.1`` unless
``CONSENTINEL_METRICS_HOST`` names another address (``0.0.0.0`` for a Prometheus on another
machine), independently of ``CONSENTINEL_WEB_HOST`` (the console's). When
``CONSENTINEL_METRICS_TOKEN`` (or ``CONSENTINEL_METRICS_TOKEN_FILE``) is set, every request
must carry ``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials_file:
...}`` in the scrape config); anything else is 401. Comparisons are constant-time.

The router's aiohttp app uses it (``ops_app`` + ``serve``); the worker's WSGI exposition
(``streams/worker/health.py``) applies the same ``OpsAccess``.

What blocks: ``serve`` awaits the bind and raises ``OSError`` when the port is taken.
``OpsAccess.from_env`` raises ``FatalConfigError`` listing every problem.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from consentinel.streams.events.ops_access import UNAUTHORIZED, OpsAccess

from .http_hygiene import SERVER_OPTIONS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


OPS_ACCESS = web.AppKey("ops_access", OpsAccess)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.app[OPS_ACCESS].allows(request.headers.get("Authorization")):
        return web.Response(status=401, text=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    return await handler(request)


def ops_app(access: OpsAccess, routes: Iterable[tuple[str, Handler]]) -> web.Application:
    """An app serving ``routes`` (GET) behind ``access``'s token."""
    app = web.Application(middlewares=[_guard], client_max_size=1024)
    app[OPS_ACCESS] = access
    for path, handler in routes:
        app.router.add_get(path, handler)
    return app


async def serve(app: web.Application, port: int) -> tuple[web.AppRunner, int]:
    """Bind ``app`` on its ``OpsAccess.host`` and ``port`` (0: any free port); returns the
    runner (``cleanup()`` it) and the bound port."""
    runner = web.AppRunner(app, access_log=None, **SERVER_OPTIONS)
    await runner.setup()
    site = web.TCPSite(runner, app[OPS_ACCESS].host, port)
    await site.start()
    server: Any = site._server
    sockets = getattr(server, "sockets", None) or []
    return runner, (sockets[0].getsockname()[1] if sockets else port)
