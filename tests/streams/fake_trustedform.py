"""A local TrustedForm-style certificate API for the tests: a real HTTP server on the
loopback, answering ``POST /<token>`` as the v4 API does (connectors.md §3.5), by what
the test says each token should be. No network.

``FakeTrustedForm().answers[token] = "verified" | "mismatch" | "expired" | "gone" |
"busy"`` (``busy`` answers 503 ``busy_times`` times, then verified); a token not in
``answers`` gets ``default`` ("gone" unless the test says otherwise). Each request is
kept in ``requests`` (path, headers, parsed JSON body).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "tf-test-key-0123456789"


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeTrustedForm:
    def __init__(self, page_url: str = "https://leadgen.example/isolation") -> None:
        self.answers: dict[str, str] = {}
        self.default = "gone"
        self.requests: list[dict[str, Any]] = []
        self.page_url = page_url
        self.created_at: str | None = None  # default: now
        self.busy_times = 2
        self._busy: dict[str, int] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(size) or b"{}")
                token = self.path.strip("/")
                fake.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                status, answer = fake.answer(token, body, self.headers.get("Authorization"))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeTrustedForm:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, token: str, body: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        import base64

        if auth != "Basic " + base64.b64encode(f"X:{KEY}".encode()).decode():
            return 401, {"message": "unauthorized"}
        kind = self.answers.get(token, self.default)
        if kind == "busy":
            seen = self._busy.get(token, 0)
            self._busy[token] = seen + 1
            if seen < self.busy_times:
                return 503, {"message": "try again"}
            kind = "verified"
        if kind == "gone":
            return 404, {"message": "certificate not found"}
        expired = kind == "expired"
        named = kind != "mismatch"
        buyer = body.get("verify", {}).get("advertiser_name", "")
        return 200, {
            "outcome": "success" if named and not expired else "failure",
            "reason": "" if named else "consent language does not include the advertiser",
            "retain": {"results": {"expires_at": _iso(timedelta(days=1825))}},
            "insights": {
                "properties": {
                    "created_at": self.created_at or _iso(timedelta(0)),
                    "expires_at": _iso(timedelta(hours=-1) if expired else timedelta(hours=71)),
                    "page_url": self.page_url,
                }
            },
            "verify": {
                "languages": [{"text": f"I agree to be contacted by {buyer if named else 'X'}"}],
                "result": {"success": named, "one_to_one": named, "language_approved": named},
            },
        }
