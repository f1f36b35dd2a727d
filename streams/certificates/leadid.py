"""A Jornaya LeadiD verifier (connectors.md §3.5) through an injectable HTTP client.

One call per claim: ``GET <endpoint>/Authenticate?lac=<account code>&id=<token>``, JSON
asked for, with ``Authorization: Bearer <key>`` when a key is configured (LeadiD's bearer
auth is optional). A LeadiD token is the 36-character UUID a campaign script wrote into the
form (``leadid_token``, ``universal_leadid``); ``lead_post`` stores it as the grant's
certificate id when the lead has no TrustedForm URL.

The token and the account code go to the configured ``endpoint`` only. Nothing about the
lead's address is sent: LeadiD answers whether the token is authentic, the rest of what the
lead claims is not matched here.

Answers:

- 200 with ``audit.authentic`` 1: ``verified``;
- 200 with ``audit.authentic`` 0 and ``reason`` 2: ``mismatch``, saying that the token's
  query limit (100 look-ups) is reached, so LeadiD no longer authenticates it: a token
  looked up that often was passed around, and the lead cannot be shown to be genuine;
- 200 with ``audit.authentic`` 0 and any other reason: ``mismatch``, with the reason code;
- 200 without ``audit.authentic``: ``RetriableError`` (an answer we cannot read);
- 404, 410: ``expired`` (LeadiD no longer has the token: its life is about a year);
- other 4xx: ``mismatch`` (LeadiD refuses the token);
- 401, 403: ``FatalConfigError`` (the account code or the key); 408, 429, 5xx:
  ``RetriableError`` (``Retry-After`` honoured as the hint).

Logs never carry the token or a response body.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from consentinel.streams.events.errors import FatalConfigError, RetriableError
from consentinel.streams.events.records import CertificateStatus
from consentinel.streams.events.settings import Secret

from .issuer_http import UrllibClient, read_answer, safe_text
from .verifier import Claim, HttpResponse, Verification

ENDPOINT = "https://api.leadid.com"
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
QUERY_LIMIT_REASON = 2  # §3.5: a token may be queried at most 100 times


def token_of(certificate_id: str) -> str | None:
    """The LeadiD token of a certificate id (a 36-character UUID); None for anything else
    (a TrustedForm URL or token)."""
    text = certificate_id.strip()
    return text if _UUID.match(text) else None


def _flag(value: Any) -> bool | None:
    """``authentic`` as LeadiD writes it (1/0, "1"/"0", true/false); None if unreadable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return value.strip() == "1"
    return None


class LeadidVerifier:
    """:class:`~.verifier.Verifier` for Jornaya LeadiD tokens (see the module doc)."""

    def __init__(
        self,
        account_code: str,
        *,
        key: Secret | None = None,
        endpoint: str = ENDPOINT,
        http: Any = None,
        timeout_s: float = 10.0,
    ) -> None:
        problems = []
        if not _ACCOUNT.match(account_code):
            problems.append(
                "CONSENTINEL_CERTIFICATE_LEADID_ACCOUNT: expected the LeadiD account code "
                "(letters, digits, - or _, at most 64)"
            )
        if not endpoint.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            problems.append(
                f"CONSENTINEL_CERTIFICATE_LEADID_ENDPOINT={endpoint!r}: expected an https URL "
                f"(plain http only on the loopback, for tests)"
            )
        if key is not None and not key.reveal():
            problems.append("CONSENTINEL_CERTIFICATE_LEADID_KEY: the key it names is empty")
        if not 0 < timeout_s <= 60:
            problems.append(f"timeout {timeout_s}: expected 0 < seconds <= 60")
        if problems:
            raise FatalConfigError(problems, "LeadiD verifier")
        self.account_code = account_code
        self.endpoint = endpoint.rstrip("/")
        self.http = http if http is not None else UrllibClient()
        self.timeout_s = timeout_s
        self._headers = {"Accept": "application/json"}
        if key is not None:
            self._headers["Authorization"] = "Bearer " + key.reveal().decode("utf-8")

    def verify(self, claim: Claim) -> Verification | None:
        token = token_of(claim.certificate_id)
        if token is None:
            return None
        query = urlencode({"lac": self.account_code, "id": token})
        answer = self.http.get(
            f"{self.endpoint}/Authenticate?{query}", self._headers, self.timeout_s
        )
        return self._read(answer)

    def _read(self, answer: HttpResponse) -> Verification:
        obj = read_answer(
            answer,
            issuer="LeadiD",
            refused="CONSENTINEL_CERTIFICATE_LEADID_ACCOUNT and CONSENTINEL_CERTIFICATE_LEADID_KEY",
            held="token",
        )
        if isinstance(obj, Verification):
            return obj
        audit = obj.get("audit") if isinstance(obj, dict) else None
        authentic = _flag(audit.get("authentic")) if isinstance(audit, dict) else None
        if authentic is None:
            raise RetriableError("LeadiD's answer has no audit.authentic", 0.0)
        if authentic:
            return Verification(CertificateStatus.VERIFIED, "LeadiD: the token is authentic")
        reason = obj.get("reason", audit.get("reason")) if isinstance(audit, dict) else None
        if str(reason).strip() == str(QUERY_LIMIT_REASON):
            return Verification(
                CertificateStatus.MISMATCH,
                "LeadiD: the token's query limit is reached (reason 2, at most 100 "
                "look-ups), it can no longer be authenticated",
            )
        shown = safe_text(reason, 40) if reason not in (None, "") else "none given"
        return Verification(
            CertificateStatus.MISMATCH, f"LeadiD: the token is not authentic (reason {shown})"
        )
