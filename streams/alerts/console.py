"""``consentinel console``: the operator console (one page, plain HTML/JS/CSS, no CDN).

Live incident feed (server-sent events from the store's change feed), incident detail with
its evidence, acknowledge and resolve (with the operator's name), evidence export (CSV,
JSON), and panels for flows, consent coverage and pipeline health read from the worker's
and the ingest server's ``/metrics``.

The work lives in named modules: ``console_access`` (token, session cookie, CSRF),
``console_feed`` (the server-sent events), ``console_handlers`` (the routes),
``console_pack`` (signed evidence packs), ``console_subjects`` (the data-subject lookup),
``console_evidence`` and ``console_metrics`` (what the pages show). This module assembles
the app and runs the command. It binds ``settings.web_host`` (loopback by default).

What blocks: ``main`` runs the server until SIGTERM or Ctrl-C. ``make_app`` raises
``FatalConfigError`` when the token is shorter than 16 bytes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.ops_access import OpsAccess
from consentinel.streams.events.settings import Settings

from . import console_handlers as h
from .console_access import ACCESS, COOKIE, CSRF_HEADER, Access, auth, security_headers
from .console_feed import FEED, Feed, feed
from .console_metrics import MetricsReader
from .console_pack import SETTINGS, evidence_pack_download
from .console_subjects import subject_lookup
from .http_hygiene import SERVER_OPTIONS
from .store import IncidentStore

__all__ = ["COOKIE", "CSRF_HEADER", "default_metrics_urls", "main", "make_app"]

log = logging.getLogger("consentinel.console")

_PAGE_PATHS = ("/", "/incidents/{incident_id}")


def make_app(
    settings: Settings,
    store: IncidentStore,
    metrics_urls: Sequence[str],
    *,
    poll_s: float = 0.5,
    metrics_token: bytes | None = None,
) -> web.Application:
    token = settings.token.reveal()
    if len(token) < 16:
        raise FatalConfigError(
            ["CONSENTINEL_TOKEN: the console needs a token of at least 16 bytes"],
            "consentinel console",
        )
    app = web.Application(middlewares=[security_headers, auth], client_max_size=64 * 1024)
    app[h.STORE] = store
    app[ACCESS] = Access(token)
    app[FEED] = Feed(store, poll_s=poll_s)
    app[h.METRICS] = MetricsReader(metrics_urls, token=metrics_token)
    for path in _PAGE_PATHS:
        app.router.add_get(path, h.page)
    app.router.add_get("/static/{name}", h.static)
    app.router.add_get("/api/health", h.health)
    app.router.add_get("/api/incidents", h.list_incidents)
    app.router.add_get("/api/incidents/{incident_id}", h.get_incident)
    app.router.add_post("/api/incidents/{incident_id}/acknowledge", h.acknowledge)
    app.router.add_post("/api/incidents/{incident_id}/resolve", h.resolve)
    app.router.add_get("/api/incidents/{incident_id}/evidence.{fmt:csv|json}", h.export)
    app[SETTINGS] = settings
    app.router.add_get("/api/incidents/{incident_id}/evidence-pack", evidence_pack_download)
    app.router.add_post("/api/subjects/lookup", subject_lookup)
    app.router.add_get("/api/stats", h.stats)
    app.router.add_get("/api/panels", h.panels)
    app.router.add_get("/api/feed", feed)
    app.router.add_get("/api/openapi.json", h.openapi)

    async def on_startup(app: web.Application) -> None:
        await app[FEED].start()

    async def on_shutdown(app: web.Application) -> None:
        await app[FEED].stop()

    async def on_cleanup(app: web.Application) -> None:
        await app[h.METRICS].close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def default_metrics_urls(settings: Settings, ops: OpsAccess | None = None) -> list[str]:
    """The worker's, the ingest server's and the router's ``/metrics`` on this machine (the
    worker and the router bind ``ops.host``; the ingest server ``settings.web_host``)."""

    def local(bound: str) -> str:
        return "127.0.0.1" if bound in ("0.0.0.0", "::") else bound

    ops_host = local(settings.web_host if ops is None else ops.host)
    return [
        f"http://{ops_host}:{settings.metrics_port}/metrics",  # the worker
        f"http://{local(settings.web_host)}:{settings.ingest_port}/metrics",  # the ingest server
        f"http://{ops_host}:{settings.metrics_port + 2}/metrics",  # the alert router
    ]


def _parse(argv: list[str]) -> argparse.Namespace:
    """The arguments; reads no settings, so ``--help`` creates no development secret."""
    p = argparse.ArgumentParser(
        prog="consentinel console",
        description="Run the operator console: incidents, evidence, flows and pipeline health.",
    )
    p.add_argument(
        "--host", default=None, help="address to bind (default: CONSENTINEL_WEB_HOST, 127.0.0.1)"
    )
    p.add_argument(
        "--port", type=int, default=None, help="port (default: CONSENTINEL_CONSOLE_PORT, 8686)"
    )
    p.add_argument(
        "--metrics-url",
        action="append",
        dest="metrics_urls",
        metavar="URL",
        help="a /metrics endpoint to read for the panels (repeat it; default: the worker's, "
        "the ingest server's and the router's, from the settings)",
    )
    p.add_argument(
        "--store",
        type=Path,
        default=None,
        help="the incident store (default: CONSENTINEL_HOME/state/incidents.db)",
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    settings = Settings.from_env()
    host = settings.web_host if args.host is None else args.host
    port = settings.console_port if args.port is None else args.port
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    store = IncidentStore(args.store) if args.store else IncidentStore.open(settings)
    ops = OpsAccess.from_env()
    urls = args.metrics_urls or default_metrics_urls(settings, ops)
    app = make_app(settings, store, urls, metrics_token=ops.token)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(
        f"consentinel console: http://{shown}:{port}/?token=<CONSENTINEL_TOKEN>\n"
        f"  (the token is CONSENTINEL_TOKEN; in development the file "
        f"{settings.home / 'secrets' / 'dev-token'})\n"
        f"  incidents from {store.path}\n"
        f"  panels from {', '.join(urls)}",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    try:
        web.run_app(app, host=host, port=port, print=None, handle_signals=True, **SERVER_OPTIONS)
    finally:
        store.close()
    log.info("console: stopped after %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
