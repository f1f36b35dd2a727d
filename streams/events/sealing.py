"""Sealing dead-letter payloads: AES-256-GCM with a key derived from the pepper.

The dead-letter topic is the one place a raw payload (which may hold raw addresses) is
kept, so it can be replayed once the cause is fixed. It is sealed at rest; ``key_id``
says which key opens it. ``open_`` is for the replay tool, never for a log line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class Sealer:
    __slots__ = ("_aead", "key_id")

    def __init__(self, secret: bytes) -> None:
        key = hmac.new(secret, b"consentinel/deadletter/v1", hashlib.sha256).digest()
        self._aead = AESGCM(key)
        self.key_id = "dl-" + hashlib.sha256(b"consentinel-dl-id:" + key).hexdigest()[:8]

    def seal(self, payload: bytes, context: str = "") -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, payload, context.encode("utf-8"))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open_(self, sealed: str, context: str = "") -> bytes:
        raw = base64.b64decode(sealed)
        return self._aead.decrypt(raw[:12], raw[12:], context.encode("utf-8"))
