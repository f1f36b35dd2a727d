"""A TrustedForm-style verifier (certificate API v4) through an injectable HTTP client.

One call per claim: ``POST <endpoint>/<certificate token>`` with ``api-version: 4.0``,
HTTP Basic (any user name, the API key as password) and a JSON body asking to retain the
certificate (``retain``: the grant's event id as reference, the lead generator as vendor),
for its ``insights`` (creation, expiry, page URL) and to ``verify`` that the consent
language names the buyer (``advertiser_name``). connectors.md §3.5 has the fields.

The API key goes to the configured ``endpoint`` only, never to the URL a lead carries: a
certificate URL is only read for its token, and only when its host is the issuer's.
The lead's address is not sent (``match_lead`` needs it in clear, and no address reaches
this side of the connectors): "data that does not match what was witnessed" is judged on
what the grant holds, the collection time and page.

Answers:

- 200/201: ``expired`` when ``insights.expires_at`` has passed; ``mismatch`` when the
  verification of the consent language fails (the disclosure does not name the buyer), the
  page seen is on another host than the lead's collection point, the lead says it was
  collected more than 5 minutes before the certificate was made or more than a day after,
  or ``outcome`` is ``failure``; else ``verified``;
- 404, 410: ``expired`` (the issuer no longer has it, or never had it);
- 400, 422: ``mismatch`` (the issuer refuses the certificate id);
- 401, 403: ``FatalConfigError`` (the key); 408, 429, 5xx: ``RetriableError``
  (``Retry-After`` honoured as the hint).

Logs name the grant's event id and the status; never the certificate URL (it opens the
certificate), never a response body.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from consentinel.streams.events import clock, codec
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.records import CertificateStatus
from consentinel.streams.events.settings import Secret

from .issuer_http import UrllibClient, read_answer, safe_text
from .verifier import Claim, HttpResponse, Verification

__all__ = ["ISSUER_HOST", "TrustedFormVerifier", "UrllibClient", "safe_text", "token_of"]

ISSUER_HOST = "cert.trustedform.com"
#: a web certificate's token: 40 hex digits (other kinds are longer URL-safe ids)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,255}$")
EARLY_MS = 5 * 60_000  # collected before the certificate was made: at most this early
LATE_MS = 86_400_000  # collected after it was made: at most this late


def token_of(certificate_id: str) -> str | None:
    """The certificate token of a TrustedForm certificate URL (or a bare token); None for
    anything else (a LeadiD token, another host)."""
    text = certificate_id.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme != "https" or (parts.hostname or "").lower() != ISSUER_HOST:
            return None
        text = parts.path.strip("/")
    if "-" in text and len(text) == 36:
        return None  # a UUID: a LeadiD token, not TrustedForm's
    return text if _TOKEN.match(text) else None


def _iso_ms(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _host(url: Any) -> str | None:
    if not isinstance(url, str) or "://" not in url:
        return None
    return (urlsplit(url).hostname or "").lower() or None


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


class TrustedFormVerifier:
    """:class:`~.verifier.Verifier` for TrustedForm certificates (see the module doc)."""

    def __init__(
        self,
        api_key: Secret,
        *,
        endpoint: str = f"https://{ISSUER_HOST}",
        http: Any = None,
        timeout_s: float = 10.0,
        now_ms: Callable[[], int] = clock.now_ms,
    ) -> None:
        problems = []
        if not api_key.reveal():
            problems.append("CONSENTINEL_CERTIFICATE_KEY: the certificate API key is not set")
        if not endpoint.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            problems.append(
                f"CONSENTINEL_CERTIFICATE_ENDPOINT={endpoint!r}: expected an https URL "
                f"(plain http only on the loopback, for tests)"
            )
        if not 0 < timeout_s <= 60:
            problems.append(f"timeout {timeout_s}: expected 0 < seconds <= 60")
        if problems:
            raise FatalConfigError(problems, "certificate verifier")
        self.endpoint = endpoint.rstrip("/")
        self.http = http if http is not None else UrllibClient()
        self.timeout_s = timeout_s
        self.now_ms = now_ms
        basic = base64.b64encode(b"X:" + api_key.reveal()).decode("ascii")
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "api-version": "4.0",
            "Authorization": f"Basic {basic}",
        }

    def verify(self, claim: Claim) -> Verification | None:
        token = token_of(claim.certificate_id)
        if token is None:
            return None
        body = codec.dumps(
            {
                "retain": {"reference": claim.reference, "vendor": claim.collected_by or ""},
                "insights": {"properties": ["created_at", "expires_at", "page_url"]},
                "verify": {"advertiser_name": claim.buyer},
            }
        )
        answer = self.http.post(f"{self.endpoint}/{token}", self._headers, body, self.timeout_s)
        return self._read(claim, answer)

    def _read(self, claim: Claim, answer: HttpResponse) -> Verification:
        obj = read_answer(
            answer,
            issuer="the certificate API",
            refused="CONSENTINEL_CERTIFICATE_KEY",
            held="certificate",
            ok=(200, 201),
        )
        if isinstance(obj, Verification):
            return obj
        return self._judge(claim, obj if isinstance(obj, dict) else {})

    def _judge(self, claim: Claim, obj: dict[str, Any]) -> Verification:
        props = _get(obj, "insights", "properties") or {}
        expires = _iso_ms(_get(props, "expires_at"))
        if expires is not None and expires <= self.now_ms():
            return Verification(CertificateStatus.EXPIRED, "the certificate has expired")
        mismatch = []
        if _get(obj, "verify", "result", "success") is False:
            mismatch.append(f"the consent language seen does not name {safe_text(claim.buyer)}")
        seen, claimed = _host(_get(props, "page_url")), _host(claim.collection_point)
        if seen and claimed and seen != claimed:
            mismatch.append(f"the form was seen on {safe_text(seen)}, not {safe_text(claimed)}")
        created = _iso_ms(_get(props, "created_at"))
        at = claim.collected_at_ms
        if (
            created is not None
            and at is not None
            and not created - EARLY_MS <= at <= created + LATE_MS
        ):
            mismatch.append("the lead's collection time is not when the form was seen")
        if not mismatch and obj.get("outcome") == "failure":
            mismatch.append(safe_text(obj.get("reason") or "the issuer reports a failure"))
        if mismatch:
            return Verification(CertificateStatus.MISMATCH, "; ".join(mismatch))
        return Verification(
            CertificateStatus.VERIFIED, "retained; the consent language names the buyer"
        )
