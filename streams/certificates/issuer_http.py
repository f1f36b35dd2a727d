"""What every issuer's verifier shares: the default HTTP client and the scrubbing of an
issuer's text before it goes into an event or a log.

``UrllibClient`` is the default :class:`~.verifier.HttpClient`: the standard library, one
connection per call, the timeout on connect and on each read; bodies over 1 MiB are cut.
It blocks for at most its timeout per call; every HTTP answer is returned (error statuses
included), and no answer at all (refused, reset, timed out) raises ``RetriableError``.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Mapping

from consentinel.streams.events.errors import RetriableError

from .verifier import HttpResponse

MAX_BODY = 1 << 20
_ADDRESS_LIKE = re.compile(r"\S+@\S+|\+?\d[\d\s().-]{6,}\d")


def safe_text(text: object, limit: int = 160) -> str:
    """An issuer's reason, fit for an event and a log: no address-like run, bounded."""
    return _ADDRESS_LIKE.sub("…", str(text))[:limit]


class UrllibClient:
    """The default :class:`~.verifier.HttpClient` (see the module doc)."""

    def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float
    ) -> HttpResponse:
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
        return self._call(request, timeout_s)

    def get(self, url: str, headers: Mapping[str, str], timeout_s: float) -> HttpResponse:
        request = urllib.request.Request(url, headers=dict(headers), method="GET")
        return self._call(request, timeout_s)

    def _call(self, request: urllib.request.Request, timeout_s: float) -> HttpResponse:
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                return HttpResponse(
                    answer.status,
                    answer.read(MAX_BODY),
                    {k.lower(): v for k, v in answer.headers.items()},
                )
        except urllib.error.HTTPError as exc:
            return HttpResponse(
                exc.code, exc.read(MAX_BODY), {k.lower(): v for k, v in exc.headers.items()}
            )
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RetriableError(
                f"the certificate API did not answer ({type(reason).__name__})", 0.0
            ) from None


def retry_after(headers: Mapping[str, str]) -> float:
    """An issuer's ``Retry-After`` in seconds (0 when absent or not a number of seconds)."""
    value = headers.get("retry-after", "")
    return float(value) if value.isdigit() else 0.0
