"""``consentinel ingest``: options, the spool, signals; the server is ``server.IngestServer``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web
from consentinel.connectors import config as config_mod
from consentinel.connectors.runtime.limits import Limits, body_limit
from consentinel.connectors.runtime.producer import EventProducer
from consentinel.connectors.runtime.server import IngestServer
from consentinel.connectors.runtime.spool import Spool
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.events.settings import Settings

_LOOPBACK = ("127.", "::1", "localhost")
MAX_RECORD = 1024 * 1024


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="consentinel ingest",
        description="Run the webhook ingest server for the instances of a connectors file.",
    )
    p.add_argument(
        "--config",
        help=f"instances file (default ${config_mod.CONFIG_ENV} or ./{config_mod.DEFAULT_FILE})",
    )
    p.add_argument("--host", help="bind address (default CONSENTINEL_WEB_HOST, loopback)")
    p.add_argument("--port", type=int, help="port (default CONSENTINEL_INGEST_PORT)")
    p.add_argument(
        "--max-record-kb",
        type=int,
        default=MAX_RECORD // 1024,
        help="the producer's largest record in KiB (max.request.size; keep it at or below the "
        "brokers' message.max.bytes); body limits derive from it (default 1024)",
    )
    p.add_argument(
        "--max-body-mb",
        type=float,
        help=f"lower the largest accepted body, in MiB (default and ceiling: what a dead "
        f"letter can hold, {body_limit(MAX_RECORD)} bytes for 1024 KiB records)",
    )
    p.add_argument(
        "--ack-wait",
        type=float,
        default=5.0,
        help="seconds to wait for Kafka's acknowledgement before spooling (default 5; keep "
        "it below the platforms' timeouts)",
    )
    p.add_argument(
        "--spool-dir",
        type=Path,
        help="the ingest spool's directory (default <CONSENTINEL_HOME>/state/ingest-spool)",
    )
    p.add_argument(
        "--spool-max-mb", type=float, default=1024.0, help="spool bound (MiB, default 1024)"
    )
    p.add_argument(
        "--spool-max-age-h", type=float, default=72.0, help="spool bound (hours, default 72)"
    )
    p.add_argument(
        "--no-spool",
        action="store_true",
        help="no spool: answer busy_status (503/429) whenever Kafka does not acknowledge",
    )
    return p


async def serve(server: IngestServer, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; what ``runner_kwargs`` says about logs and timeouts."""
    runner = web.AppRunner(server.app(), **server.runner_kwargs())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(
        f"consentinel ingest: listening on http://{host}:{port}/hooks/<instance> for "
        f"{len(server.connectors)} instance(s): {', '.join(sorted(server.connectors))}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    cfg = config_mod.load(config_mod.default_path(args.config), settings)
    if not cfg.instances:
        print(
            f"consentinel ingest: {cfg.path} defines no instance; nothing to serve", file=sys.stderr
        )
        return 78
    host = args.host or settings.web_host
    if not host.startswith(_LOOPBACK):
        print(
            f"consentinel ingest: binding {host}, not loopback: put it behind TLS", file=sys.stderr
        )
    max_record = args.max_record_kb * 1024
    max_body = None if args.max_body_mb is None else int(args.max_body_mb * 1024 * 1024)
    producer = EventProducer(
        settings,
        client_id="consentinel-ingest",
        ack_timeout=args.ack_wait,
        max_request_size=max_record,
    )
    spool = None
    if not args.no_spool:
        spool = Spool(
            args.spool_dir or settings.state_dir / "ingest-spool",
            Sealer(settings.pepper.reveal()),
            max_bytes=int(args.spool_max_mb * 1024 * 1024),
            max_age_s=args.spool_max_age_h * 3600,
        )
        try:
            spool.open()
        except FatalConfigError as exc:
            print(f"consentinel ingest: {exc}", file=sys.stderr)
            return 78
    limits = Limits.for_record(max_record, max_body)
    if max_body is not None and max_body > limits.max_body:
        print(
            f"consentinel ingest: --max-body-mb lowered to {limits.max_body} bytes, the largest "
            f"body whose dead letter fits a {max_record}-byte record",
            file=sys.stderr,
        )
    server = IngestServer(settings, cfg, producer, limits=limits, spool=spool)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(server, host, args.port or settings.ingest_port, stop)

    try:
        asyncio.run(run())
    finally:
        if spool is not None:
            spool.close()
    return 0
