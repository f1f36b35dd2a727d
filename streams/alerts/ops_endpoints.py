"""``/metrics`` and ``/healthz`` of the router and the worker: loopback by default, token optional.

These endpoints say how busy the monitor is, which controllers raise incidents and how far
behind each consumer is: not for the whole network. They bind ``127.0.0.1`` unless
``CONSENTINEL_METRICS_HOST`` names another address (``0.0.0.0`` for a Prometheus on another
machine), independently of ``CONSENTINEL_WEB_HOST`` (the console's). When
``CONSENTINEL_METRICS_TOKEN`` (or ``CONSENTINEL_METRICS_TOKEN_FILE``) is set, every request
must carry ``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials_file:
...}`` in the scrape config); anything else is 401. Comparisons are constant-time.

The router's aiohttp app uses it (``ops_app`` + ``serve``, with the ``metrics`` handler);
the certificate service, which has no event loop of its own, runs the same app in a daemon
thread (``serve_in_thread``); the worker's WSGI exposition (``streams/worker/health.py``)
applies the same ``OpsAccess``.

What blocks: ``serve`` awaits the bind and raises ``OSError`` when the port is taken;
``serve_in_thread`` blocks until the thread has bound the port (or failed to: it raises the
same ``OSError``). ``OpsAccess.from_env`` raises ``FatalConfigError`` listing every problem.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from consentinel.streams.events.metrics import REGISTRY
from consentinel.streams.events.ops_access import UNAUTHORIZED, OpsAccess
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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


async def metrics(_: web.Request) -> web.Response:
    """``/metrics``: the catalog's registry in Prometheus's text format."""
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


class ThreadedOps:
    """An ops app served by its own event loop in a daemon thread (for a process whose main
    thread blocks on something else). ``port`` is the bound port; ``close()`` stops it."""

    def __init__(self, app: web.Application, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = port
        self._error: BaseException | None = None
        bound = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._runner, self.port = self._loop.run_until_complete(serve(app, port))
            except BaseException as exc:  # handed to the caller, raised there
                self._error = exc
                bound.set()
                return
            bound.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="consentinel-ops", daemon=True)
        self._thread.start()
        bound.wait()
        if self._error is not None:
            self._loop.close()
            raise self._error

    def close(self) -> None:
        if self._runner is None or self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def serve_in_thread(app: web.Application, port: int) -> ThreadedOps:
    """Serve ``app`` (from ``ops_app``) on ``port`` in a daemon thread; raises ``OSError``
    when the port is taken."""
    return ThreadedOps(app, port)
