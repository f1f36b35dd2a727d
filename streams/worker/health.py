"""The worker's small HTTP server: ``/metrics`` (Prometheus) and ``/healthz`` (readiness).

``/healthz`` answers 200 with ``{"ready": true, ...}`` once the worker judges: its topics
and changelogs exist and are visible, Faust has recovered its tables, and the purpose
registry is read; 503 with ``"ready": false`` before that. It runs in a daemon thread
(plain WSGI, no Faust), so it answers even while the event loop is busy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from consentinel.streams.events import codec, metrics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.ops_access import UNAUTHORIZED, OpsAccess


class Readiness:
    """Set once, from the event loop; read from the server's thread. Blocks on nothing."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self.since_ms: int | None = None

    def set(self) -> None:
        if not self._ready.is_set():
            self.since_ms = now_ms()
            self._ready.set()

    def is_set(self) -> bool:
        return self._ready.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._ready.wait(timeout_s)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no access log
        return


class _Server(WSGIServer):
    daemon_threads = True


def _app(readiness: Readiness, access: OpsAccess) -> Callable[..., Iterable[bytes]]:
    from prometheus_client import make_wsgi_app

    prometheus = make_wsgi_app(metrics.REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not access.allows(environ.get("HTTP_AUTHORIZATION")):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
            )
            return [UNAUTHORIZED.encode()]
        if environ.get("PATH_INFO") == "/healthz":
            ready = readiness.is_set()
            body: bytes = codec.dumps({"ready": ready, "since_ms": readiness.since_ms})
            status = "200 OK" if ready else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [body]
        result: Iterable[bytes] = prometheus(environ, start_response)
        return result

    return app


def serve(port: int, readiness: Readiness, access: OpsAccess | None = None) -> WSGIServer:
    """Serve in a daemon thread; ``shutdown()`` the returned server to stop.

    Raises OSError when the port cannot be bound.
    """
    access = access or OpsAccess()
    server = make_server(
        access.host, port, _app(readiness, access), server_class=_Server, handler_class=_Quiet
    )
    threading.Thread(target=server.serve_forever, name="consentinel-metrics", daemon=True).start()
    return server
