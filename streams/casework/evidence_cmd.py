"""``consentinel evidence``: make a signing key, export a signed pack, verify one.

- ``keygen --out FILE``: a new Ed25519 seed (hex) in FILE, mode 0600; prints the public key.
- ``export --incident ID --case REF --out FILE``: the incident's pack, signed with the key
  that ``CONSENTINEL_EVIDENCE_KEY`` (``env:NAME`` or ``file:PATH``) names. The declarations
  in force are read from the registry topic unless ``--no-registry``.
- ``chain``: walk the incident store's hash chain; exit 1 naming the first edited row.
- ``verify FILE [--public-key HEX|env:NAME|file:PATH]``: exit 0 when the pack verifies,
  1 with the reason when it does not.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from consentinel.streams.alerts import evidence_pack
from consentinel.streams.alerts.chain import ChainBroken
from consentinel.streams.alerts.evidence_pack import EvidenceError, signing_key
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events import topics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.secrets import UnresolvedSecret, is_reference, resolve
from consentinel.streams.events.settings import Settings
from consentinel.streams.registry.topic import read_all


def export_pack(
    settings: Settings,
    store: IncidentStore,
    incident_id: str,
    case_ref: str,
    declarations: dict[str, Any],
) -> bytes:
    inc = store.get_incident(incident_id)
    if inc is None:
        raise EvidenceError(f"no incident {incident_id!r} in {store.path}")
    return evidence_pack.build(
        inc,
        store.alerts_of(incident_id, limit=1_000_000),
        case_ref=case_ref,
        declarations=declarations,
        key=signing_key(settings),
        exported_at_ms=now_ms(),
    )


def _declarations(settings: Settings) -> dict[str, Any]:
    return dict(read_all(settings.bootstrap_servers, settings.topic(topics.REGISTRY)).snapshot())


def _public_key(value: str) -> str:
    if is_reference(value):
        try:
            return resolve(value, environ=dict(os.environ)).reveal().decode("ascii")
        except UnresolvedSecret as exc:
            raise EvidenceError(f"--public-key: {exc.problem}") from None
    return value


def _parser() -> argparse.ArgumentParser:
    doc = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="consentinel evidence", description=doc)
    sub = parser.add_subparsers(dest="action", required=True)
    kg = sub.add_parser("keygen", help="write a new Ed25519 signing key (mode 0600)")
    kg.add_argument("--out", required=True, type=Path, help="the key file to create")
    ex = sub.add_parser("export", help="write an incident's signed evidence pack")
    ex.add_argument("--incident", required=True, help="the incident id")
    ex.add_argument("--case", required=True, help="the operator's case reference")
    ex.add_argument("--out", required=True, type=Path, help="the pack file to write")
    ex.add_argument(
        "--no-registry", action="store_true", help="do not read the declarations from Kafka"
    )
    sub.add_parser("chain", help="verify the incident store's hash chain")
    ve = sub.add_parser("verify", help="check a pack's hashes and signature")
    ve.add_argument("file", type=Path)
    ve.add_argument(
        "--public-key", help="the signer's public key: hex, env:NAME or file:PATH (recommended)"
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "keygen":
            print(f"public key: {evidence_pack.keygen(args.out)}")
            print(f"set CONSENTINEL_EVIDENCE_KEY=file:{args.out.resolve()}")
            return 0
        if args.action == "verify":
            key = _public_key(args.public_key) if args.public_key else None
            ok = evidence_pack.verify(args.file.read_bytes(), key)
            print(
                f"OK: incident {ok.incident_id}, case {ok.case_ref!r}, {ok.alert_count} alert(s); "
                + (
                    "signed by the given key"
                    if ok.key_trusted
                    else "intact, but signed by the EMBEDDED key: pass --public-key to know who"
                )
            )
            return 0
        settings = Settings.from_env()
        if args.action == "chain":
            with IncidentStore.open(settings) as store:
                report = store.verify_chain()
            print(f"OK: {report.rows} change(s) chained; head {report.head}")
            return 0
        signing_key(settings)  # fail on a missing key before reading anything
        decls = {} if args.no_registry else _declarations(settings)
        with IncidentStore.open(settings) as store:
            data = export_pack(settings, store, args.incident, args.case, decls)
        args.out.write_bytes(data)
        print(f"wrote {args.out} ({len(data)} bytes) for incident {args.incident}")
        return 0
    except (EvidenceError, ChainBroken) as exc:
        print(f"consentinel evidence {args.action}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        problem = f"{exc.filename}: {exc.strerror}"
        print(f"consentinel evidence {args.action}: {problem}", file=sys.stderr)
        return 1
