"""``/metrics`` and ``/healthz`` of the router and the worker: loopback by default, token optional.

These endpoints say how busy the monitor is, which controllers raise incidents and how far
behind each consumer is: not for the whole network. They bind ``127.0.0.1`` unless
``CONSENTINEL_METRICS_HOST`` names another address (``0.0.0.0`` for a Prometheus on another
machine), independently of ``CONSENTINEL_WEB_HOST`` (the console's). When
``CONSENTINEL_METRICS_TOKEN`` (or ``CONSENTINEL_METRICS_TOKEN_FILE``) is set, every request
must carry ``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials_file:
...}`` in the scrape config); anything else is 401. Comparisons are constant-time.

Two servers use it: the router's aiohttp app (``ops_app`` + ``serve``) and the worker's
Prometheus exposition (``serve_metrics_in_thread``, a WSGI server in a daemon thread, as
``prometheus_client.start_http_server`` runs one).

What blocks: ``serve`` awaits the bind; ``serve_metrics_in_thread`` binds on the calling
thread and serves on its own. Both raise ``OSError`` when the port is taken.
``OpsAccess.from_env`` raises ``FatalConfigError`` listing every problem.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

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


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the request line could carry what we do not log."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_metrics_in_thread(port: int, registry: Any, access: OpsAccess) -> WSGIServer:
    """The worker's ``/metrics`` (Prometheus text) behind ``access``, served by a daemon
    thread; ``shutdown()`` the returned server to stop it."""
    from prometheus_client import make_wsgi_app

    exposition = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if not access.allows(environ.get("HTTP_AUTHORIZATION")):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
            )
            return [UNAUTHORIZED.encode()]
        return exposition(environ, start_response)

    server = make_server(access.host, port, app, _ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
