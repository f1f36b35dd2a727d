"""DEMO ONLY: a stand-in certificate issuer for `make run`, never for production.

The demo's purchased leads (``leads-jeuxconcours``) carry TrustedForm certificate URLs that
no real issuer knows. This server stands in for the issuers the way the demo feed stands
in for the platforms, so that ``consentinel certificates verify`` has someone to ask:

- ``POST /<token>`` as TrustedForm's certificate API v4 (connectors.md §3.5), HTTP Basic with
  the demo key (``deploy/demo/secrets/trustedform-key``): every certificate is answered
  ``success``, its consent language naming the buyer the request names (no page URL and no
  creation time in the insights: the stand-in did not witness the form, so the verifier's
  page and time checks have nothing to compare);
- ``GET /Authenticate?lac=&id=`` as Jornaya LeadiD: every token authentic.

It listens on the loopback only (the verifier accepts plain http there and nowhere else).
``python -m consentinel.connectors.demo.issuer --port N`` runs it until SIGTERM or Ctrl-C.
Nothing it answers is evidence of anything.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput

KEY_FILE = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "secrets" / "trustedform-key"
MAX_BODY = 64 * 1024


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


class DemoIssuer:
    """The stand-in (see the module doc); ``with DemoIssuer(key) as issuer:`` serves it in a
    daemon thread on ``issuer.endpoint``."""

    def __init__(self, key: bytes, port: int = 0) -> None:
        self.expected = "Basic " + base64.b64encode(b"X:" + key).decode("ascii")
        self.answered = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # no access log: paths hold tokens
                pass

            def _send(self, status: int, answer: Any) -> None:
                data = codec.dumps(answer)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                size = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                raw = self.rfile.read(size)
                self._send(*issuer.trustedform(self.headers.get("Authorization"), raw))

            def do_GET(self) -> None:
                self._send(*issuer.leadid(urlsplit(self.path).path))

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> DemoIssuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def trustedform(self, auth: str | None, raw: bytes) -> tuple[int, Any]:
        if not hmac.compare_digest((auth or "").encode(), self.expected.encode()):
            return 401, {"message": "unauthorized (the demo key is in deploy/demo/secrets)"}
        try:
            body = codec.loads(raw or b"{}")
        except InvalidInput:
            return 400, {"message": "the body is not JSON"}
        verify = body.get("verify") if isinstance(body, dict) else None
        buyer = verify.get("advertiser_name", "") if isinstance(verify, dict) else ""
        self.answered += 1
        return 200, {
            "outcome": "success",
            "reason": "",
            "retain": {"results": {"expires_at": _iso(timedelta(days=1825))}},
            "insights": {"properties": {"expires_at": _iso(timedelta(hours=71))}},
            "verify": {
                "languages": [{"text": f"DEMO ONLY: I agree to be contacted by {buyer}"}],
                "result": {"success": True, "one_to_one": True, "language_approved": True},
            },
        }

    def leadid(self, path: str) -> tuple[int, Any]:
        if path != "/Authenticate":
            return 404, {"message": "not found"}
        self.answered += 1
        return 200, {"audit": {"authentic": 1}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consentinel.connectors.demo.issuer",
        description="DEMO ONLY: a stand-in certificate issuer on the loopback for `make run`.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--key-file", default=str(KEY_FILE), help="the demo API key")
    args = parser.parse_args(argv)
    key = Path(args.key_file).read_bytes().strip()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with DemoIssuer(key, args.port) as issuer:
        print(f"DEMO ONLY certificate issuer at {issuer.endpoint}", file=sys.stderr, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
