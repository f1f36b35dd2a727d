"""A local Jornaya LeadiD API for the tests: a real HTTP server on the loopback answering
``GET /Authenticate?lac=<account code>&id=<token>`` as connectors.md §3.5 describes (HTTP
200, ``audit.authentic`` 1 or 0, ``reason`` 2 once a token's query limit is reached), by
what the test says each token should be. No network.

``FakeLeadid().answers[token] = "authentic" | "not_authentic" | "limit" | "gone" | "busy"``
(``busy`` answers 503 ``busy_times`` times, then authentic; an unknown token is
``not_authentic``, reason 1). With ``key`` set, a request without ``Authorization: Bearer
<key>`` gets 401; a request for another account code than ``ACCOUNT`` gets 403. Each
request is kept in ``requests`` (path, query, headers).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT = "ACME-LAC-01"
KEY = "leadid-test-key-0123456789"


class FakeLeadid:
    def __init__(self, *, key: str | None = None) -> None:
        self.answers: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self.key = key
        self.busy_times = 2
        self._busy: dict[str, int] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.requests.append({"path": parts.path, "query": query, "headers": headers})
                status, answer = fake.answer(parts.path, query, headers.get("authorization"))
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

    def __enter__(self) -> FakeLeadid:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, query: dict[str, str], auth: str | None) -> tuple[int, Any]:
        if path != "/Authenticate":
            return 404, {"message": "not found"}
        if self.key is not None and auth != f"Bearer {self.key}":
            return 401, {"message": "unauthorized"}
        if query.get("lac") != ACCOUNT:
            return 403, {"message": "unknown account"}
        token = query.get("id", "")
        kind = self.answers.get(token, "not_authentic")
        if kind == "busy":
            seen = self._busy.get(token, 0)
            self._busy[token] = seen + 1
            if seen < self.busy_times:
                return 503, {"message": "try again"}
            kind = "authentic"
        if kind == "gone":
            return 404, {"message": "token not found"}
        if kind == "authentic":
            return 200, {"audit": {"authentic": 1, "token": token}}
        reason = 2 if kind == "limit" else 1
        return 200, {"audit": {"authentic": 0, "token": token}, "reason": reason}
