"""Who may read the operational endpoints (``/metrics``, ``/healthz``) and where they listen.

Pure configuration, shared by every process that serves them (worker, router, ingest): they
bind ``127.0.0.1`` unless ``CONSENTINEL_METRICS_HOST`` names another address, and when
``CONSENTINEL_METRICS_TOKEN`` (or ``_FILE``) is set every request must carry
``Authorization: Bearer <token>``, compared in constant time.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from consentinel.streams.events.errors import FatalConfigError

LOOPBACK = "127.0.0.1"
UNAUTHORIZED = (
    "401: this endpoint needs CONSENTINEL_METRICS_TOKEN as `Authorization: Bearer <token>` "
    "(in a Prometheus scrape config: authorization: {credentials_file: FILE})\n"
)


@dataclass(frozen=True)
class OpsAccess:
    """Where the operational endpoints listen and the token they need (``None``: none)."""

    host: str = LOOPBACK
    token: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OpsAccess:
        """``CONSENTINEL_METRICS_HOST``, ``CONSENTINEL_METRICS_TOKEN[_FILE]``; raises
        ``FatalConfigError`` for an unreadable file or a token shorter than 16 bytes."""
        env = os.environ if environ is None else environ
        problems: list[str] = []
        token: bytes | None = None
        if env.get("CONSENTINEL_METRICS_TOKEN_FILE"):
            path = env["CONSENTINEL_METRICS_TOKEN_FILE"]
            try:
                token = Path(path).read_bytes().strip()
            except OSError as exc:
                problems.append(f"CONSENTINEL_METRICS_TOKEN_FILE={path}: cannot read it ({exc})")
        elif env.get("CONSENTINEL_METRICS_TOKEN"):
            token = env["CONSENTINEL_METRICS_TOKEN"].encode("utf-8")
        if token is not None and len(token) < 16:
            problems.append(
                "CONSENTINEL_METRICS_TOKEN: shorter than 16 bytes; make a longer one "
                "(`head -c 24 /dev/urandom | base64`)"
            )
        if problems:
            raise FatalConfigError(problems, "metrics endpoints")
        return cls(env.get("CONSENTINEL_METRICS_HOST") or LOOPBACK, token)

    def allows(self, authorization: str | None) -> bool:
        """True when no token is set, or ``authorization`` is ``Bearer <the token>``."""
        if self.token is None:
            return True
        if not authorization or not authorization.startswith("Bearer "):
            return False
        return hmac.compare_digest(authorization[7:].strip().encode("utf-8"), self.token)
