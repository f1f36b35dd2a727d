"""What every issuer's verifier shares: the default HTTP client, the reading of an
issuer's answer by its status, and the scrubbing of an issuer's text before it goes into
an event or a log.

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
from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.events.errors import FatalConfigError, InvalidInput, RetriableError
from consentinel.streams.events.records import CertificateStatus

from .verifier import HttpResponse, Verification

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


def read_answer(
    answer: HttpResponse, *, issuer: str, refused: str, held: str, ok: tuple[int, ...] = (200,)
) -> Verification | Any:
    """What ``issuer``'s answer says by its status, else its JSON body.

    401/403: the key or account is wrong, ``FatalConfigError`` (``refused`` says what to
    check); 408, 429, 5xx and a body that is not JSON: ``RetriableError``, honouring
    ``Retry-After``; 404/410: the issuer no longer holds the ``held`` (expired); any other
    status not in ``ok``: a mismatch. Otherwise the parsed body, for the issuer's reading.
    """
    status = answer.status
    if status in (401, 403):
        raise FatalConfigError(
            [f"{issuer} refused the key (HTTP {status}): check {refused}"], f"{issuer} verifier"
        )
    if status in (408, 429) or status >= 500:
        raise RetriableError(f"{issuer} is busy (HTTP {status})", retry_after(answer.headers))
    if status in (404, 410):
        return Verification(
            CertificateStatus.EXPIRED, f"{issuer} no longer holds the {held} (HTTP {status})"
        )
    if status not in ok:
        return Verification(
            CertificateStatus.MISMATCH, f"{issuer} refused the {held} (HTTP {status})"
        )
    try:
        return codec.loads(answer.body)
    except InvalidInput:
        raise RetriableError(f"{issuer} answered something that is not JSON", 0.0) from None
