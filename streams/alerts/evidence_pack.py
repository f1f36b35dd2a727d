"""A signed evidence pack: one incident's evidence as ONE file a regulator can check.

The file is one JSON document in canonical form (the codec's bytes, keys in the order
written here)::

    {"format": "consentinel-evidence/1",
     "manifest": {"format": ..., "parts": {"alerts": "<sha256>", "case": ..., ...}},
     "public_key": "<Ed25519 public key, hex>",
     "signature": "<Ed25519 signature over the codec bytes of manifest, hex>",
     "parts": {"case": {...}, "incident": {...}, "alerts": [...],
               "rules": [...], "declarations": [...]}}

Each part's hash is SHA-256 over the codec bytes of that part. ``verify`` checks, in
order: the file is JSON, of this format; every part is in the manifest and every manifest
entry is a part; each hash matches; the signature over the manifest verifies with the
public key given by the verifier (or, failing that, the embedded one, which proves
integrity only: anyone can re-sign with a new key); and the file's bytes are exactly the
canonical form, so a one-byte change anywhere (even white space) fails, with a message
that names what failed.

Keys are Ed25519, stored as the 32-byte private seed in hex (one line, so a secret
reference ``env:`` or ``file:`` holds it); ``keygen`` writes a new one with mode 0600.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.events.errors import ConsentinelError, FatalConfigError, InvalidInput
from consentinel.streams.events.records import Alert
from consentinel.streams.events.secrets import UnresolvedSecret, resolve
from consentinel.streams.events.settings import Settings
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .console_evidence import evidence_item, incident_view, iso
from .model import Incident

FORMAT = "consentinel-evidence/1"
PARTS = ("case", "incident", "alerts", "rules", "declarations")


class EvidenceError(ConsentinelError):
    """A pack that cannot be made or does not verify; the message says what failed."""


@dataclass(frozen=True)
class Verified:
    case_ref: str
    incident_id: str
    alert_count: int
    key_trusted: bool  # the verifier gave the public key (not only the embedded one)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- keys --------------------------------------------------------------------------------


def private_key(seed_hex: bytes) -> Ed25519PrivateKey:
    try:
        seed = bytes.fromhex(seed_hex.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise EvidenceError(
            "the evidence signing key is not a hex Ed25519 seed: make one with "
            "`consentinel evidence keygen --out FILE`"
        ) from None
    if len(seed) != 32:
        raise EvidenceError(
            f"the evidence signing key has {len(seed)} bytes, an Ed25519 seed has 32: "
            "make one with `consentinel evidence keygen --out FILE`"
        )
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes_raw().hex()


def keygen(path: Path) -> str:
    """Write a new private seed (hex) to ``path`` with mode 0600; the public key (hex)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw().hex()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise EvidenceError(f"{path} exists: keygen never overwrites a key") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(seed + "\n")
    return public_hex(key)


def signing_key(settings: Settings, environ: dict[str, str] | None = None) -> Ed25519PrivateKey:
    """The Ed25519 key the settings name; a clear ``FatalConfigError`` when absent."""
    ref = settings.evidence_key
    if not ref:
        raise FatalConfigError(
            [
                "CONSENTINEL_EVIDENCE_KEY is not set: evidence packs are signed. Make a key "
                "with `consentinel evidence keygen --out FILE` and set "
                "CONSENTINEL_EVIDENCE_KEY=file:FILE"
            ],
            "evidence signing key",
        )
    try:
        seed = resolve(ref, environ=dict(os.environ if environ is None else environ))
    except UnresolvedSecret as exc:
        raise FatalConfigError(
            [f"CONSENTINEL_EVIDENCE_KEY: {exc.problem}"], "evidence signing key"
        ) from None
    try:
        return private_key(seed.reveal())
    except EvidenceError as exc:
        problem = f"CONSENTINEL_EVIDENCE_KEY: {exc}"
        raise FatalConfigError([problem], "evidence signing key") from None


# -- building ----------------------------------------------------------------------------


def _rules(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item["rule_id"], item["rule_source"])
    return [{"rule_id": r, "source": s} for r, s in sorted(seen.items())]


def build(
    inc: Incident,
    alerts: Iterable[Alert],
    *,
    case_ref: str,
    declarations: Mapping[str, Any],
    key: Ed25519PrivateKey,
    exported_at_ms: int,
) -> bytes:
    """The pack's bytes. ``declarations``: declaration id -> record (those in force)."""
    if not case_ref.strip():
        raise EvidenceError("a case reference is required (the operator's file number)")
    items = [evidence_item(a) for a in alerts]
    used = sorted({i["declaration_id"] for i in items if i["declaration_id"]})
    decls = [{"declaration_id": d, "in_force": codec.to_obj(declarations.get(d))} for d in used]
    parts: dict[str, Any] = {
        "case": {"case_ref": case_ref.strip(), "exported_at": iso(exported_at_ms)},
        "incident": incident_view(inc),
        "alerts": items,
        "rules": _rules(items),
        "declarations": decls,
    }
    manifest = {"format": FORMAT, "parts": {n: sha256(codec.dumps(parts[n])) for n in PARTS}}
    return codec.dumps(
        {
            "format": FORMAT,
            "manifest": manifest,
            "public_key": public_hex(key),
            "signature": key.sign(codec.dumps(manifest)).hex(),
            "parts": parts,
        }
    )


# -- verifying ---------------------------------------------------------------------------


def _public(hex_key: str, where: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key.strip().lower()))
    except ValueError:
        raise EvidenceError(f"{where} is not a hex Ed25519 public key (64 hex digits)") from None


def _lower_hex(text: str) -> bytes:
    """The bytes of lower-case hex; anything else (upper case too) is a ``ValueError``."""
    raw = bytes.fromhex(text)
    if raw.hex() != text:
        raise ValueError("not lower-case hex")
    return raw


def verify(data: bytes, public_key_hex: str | None = None) -> Verified:
    """Check a pack; raises :class:`EvidenceError` naming the first thing that failed."""
    try:
        doc = codec.loads(data)
    except InvalidInput:
        raise EvidenceError("the file is not valid JSON: it was altered or truncated") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EvidenceError(f"the file is not a {FORMAT} evidence pack")
    parts, manifest = doc.get("parts"), doc.get("manifest")
    if not isinstance(parts, dict) or not isinstance(manifest, dict):
        raise EvidenceError("the pack has no parts or no manifest")
    listed = manifest.get("parts")
    if manifest.get("format") != FORMAT or not isinstance(listed, dict):
        raise EvidenceError("the manifest is malformed")
    if set(listed) != set(parts):
        extra = sorted(set(parts) - set(listed))
        missing = sorted(set(listed) - set(parts))
        raise EvidenceError(f"parts not in the manifest: {extra}; missing parts: {missing}")
    for name in listed:
        if sha256(codec.dumps(parts[name])) != listed[name]:
            raise EvidenceError(f"part {name!r} does not match its SHA-256 in the manifest")
    trusted = public_key_hex is not None
    embedded = str(doc.get("public_key", ""))
    whose = "the given public key" if trusted else "the embedded public key"
    key = _public(public_key_hex if public_key_hex is not None else embedded, whose)
    signature = str(doc.get("signature", ""))
    try:
        key.verify(_lower_hex(signature), codec.dumps(manifest))
    except (InvalidSignature, ValueError):
        raise EvidenceError(f"the manifest's signature does not verify with {whose}") from None
    if embedded != key.public_bytes_raw().hex():
        raise EvidenceError("the embedded public key is not the given one: the pack was altered")
    if codec.dumps(doc) != data:
        raise EvidenceError(
            "the file's bytes differ from its canonical form: it was edited after signing"
        )
    case = parts.get("case") or {}
    incident = parts.get("incident") or {}
    return Verified(
        case_ref=str(case.get("case_ref", "")),
        incident_id=str(incident.get("incident_id", "")),
        alert_count=len(parts.get("alerts") or []),
        key_trusted=trusted,
    )
