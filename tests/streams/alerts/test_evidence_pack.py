"""Signed evidence packs: build, verify, and every one-byte change fails (unit, no broker)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from alerting import alert
from consentinel.streams.alerts import evidence_pack
from consentinel.streams.alerts.evidence_pack import EvidenceError
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.casework import evidence_cmd
from consentinel.streams.events import codec
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.records import Channel, Declaration
from consentinel.streams.events.settings import Settings
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SEED = bytes(range(32)).hex().encode()


def _pack(store: IncidentStore, case: str = "CNIL-2026-0042") -> tuple[bytes, str]:
    store.ingest(alert("e1"), now_ms=1)
    store.ingest(alert("e2"), now_ms=2)
    (inc,) = store.list_incidents()
    key = evidence_pack.private_key(SEED)
    decl_id = alert("e1").decl_id
    decls = {
        decl_id: Declaration(
            decl_id=decl_id or "d", ref_kind="campaign", ref="politics-27",
            controller="broker-lists", purpose="political", channel=Channel.EMAIL,
        )
    } if decl_id else {}  # fmt: skip
    data = evidence_pack.build(
        inc, store.alerts_of(inc.incident_id), case_ref=case, declarations=decls, key=key,
        exported_at_ms=1_760_000_000_000,
    )  # fmt: skip
    return data, evidence_pack.public_hex(key)


def test_a_pack_verifies_with_its_signer_key_and_carries_the_case(store: IncidentStore) -> None:
    data, pub = _pack(store)
    ok = evidence_pack.verify(data, pub)
    (inc,) = store.list_incidents()
    assert (ok.case_ref, ok.incident_id, ok.alert_count, ok.key_trusted) == (
        "CNIL-2026-0042", inc.incident_id, 2, True,
    )  # fmt: skip
    doc = codec.loads(data)
    assert set(doc["manifest"]["parts"]) == set(evidence_pack.PARTS)
    assert doc["parts"]["rules"] == [{"rule_id": "R2", "source": "[S6 art. 5(1)(b), 6(4)]"}]
    assert b"sk-e1" not in data or doc["parts"]["alerts"][0]["subject_ref"] == "sk-e1"
    assert not evidence_pack.verify(data).key_trusted


def test_every_single_byte_change_fails_verification(store: IncidentStore) -> None:
    data, pub = _pack(store)
    reasons: set[str] = set()
    for i in range(len(data)):
        altered = bytearray(data)
        altered[i] = altered[i] ^ 0x01 if altered[i] ^ 0x01 else 0x20
        with pytest.raises(EvidenceError) as err:
            evidence_pack.verify(bytes(altered), pub)
        reasons.add(str(err.value).split(":")[0].split(" does not")[0])
    # the messages say what failed: a hash, the signature, the JSON, the canonical form...
    assert any("part 'alerts'" in r for r in reasons)
    assert any("signature" in r for r in reasons)
    assert any("not valid JSON" in r for r in reasons)


def test_a_re_signed_pack_fails_with_the_real_key(store: IncidentStore) -> None:
    data, pub = _pack(store)
    doc = codec.loads(data)
    doc["parts"]["case"]["case_ref"] = "forged"
    doc["manifest"]["parts"]["case"] = evidence_pack.sha256(codec.dumps(doc["parts"]["case"]))
    other = Ed25519PrivateKey.generate()
    doc["public_key"] = evidence_pack.public_hex(other)
    doc["signature"] = other.sign(codec.dumps(doc["manifest"])).hex()
    forged = codec.dumps(doc)
    assert evidence_pack.verify(forged).case_ref == "forged"  # intact, but by whom?
    with pytest.raises(EvidenceError, match="signature does not verify with the given"):
        evidence_pack.verify(forged, pub)


def test_white_space_added_after_signing_fails_as_not_canonical(store: IncidentStore) -> None:
    data, pub = _pack(store)
    with pytest.raises(EvidenceError, match="canonical form"):
        evidence_pack.verify(data + b"\n", pub)


def test_an_empty_case_reference_is_refused(store: IncidentStore) -> None:
    with pytest.raises(EvidenceError, match="case reference"):
        _pack(store, case="  ")


def test_keygen_writes_a_0600_key_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "evidence.key"
    pub = evidence_pack.keygen(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert evidence_pack.public_hex(evidence_pack.private_key(path.read_bytes())) == pub
    with pytest.raises(EvidenceError, match="never overwrites"):
        evidence_pack.keygen(path)


def test_a_missing_or_bad_signing_key_is_a_clear_config_error(tmp_path: Path) -> None:
    base = {"CONSENTINEL_HOME": str(tmp_path)}
    with pytest.raises(FatalConfigError, match="CONSENTINEL_EVIDENCE_KEY is not set"):
        evidence_pack.signing_key(Settings.from_env(base))
    s = Settings.from_env({**base, "CONSENTINEL_EVIDENCE_KEY": "env:NO_SUCH_KEY_VAR"})
    with pytest.raises(FatalConfigError, match="NO_SUCH_KEY_VAR is not set"):
        evidence_pack.signing_key(s, {})
    with pytest.raises(FatalConfigError, match="not a hex Ed25519 seed"):
        evidence_pack.signing_key(s, {"NO_SUCH_KEY_VAR": "not-hex"})


def test_the_cli_exports_and_verifies_and_reports_tampering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CONSENTINEL_HOME", str(home))
    key = tmp_path / "k"
    assert evidence_cmd.main(["keygen", "--out", str(key)]) == 0
    pub = capsys.readouterr().out.split("public key: ")[1].split()[0]
    monkeypatch.setenv("CONSENTINEL_EVIDENCE_KEY", f"file:{key}")
    with IncidentStore.open(Settings.from_env()) as store:
        store.ingest(alert("e1"), now_ms=1)
        (inc,) = store.list_incidents()
    out = tmp_path / "pack.json"
    argv = ["export", "--incident", inc.incident_id, "--case", "REF-1", "--out", str(out)]
    assert evidence_cmd.main([*argv, "--no-registry"]) == 0
    assert evidence_cmd.main(["verify", str(out), "--public-key", pub]) == 0
    assert "case 'REF-1'" in capsys.readouterr().out
    data = out.read_bytes()
    out.write_bytes(data.replace(b"REF-1", b"REF-2"))
    assert evidence_cmd.main(["verify", str(out), "--public-key", pub]) == 1
    assert "part 'case' does not match" in capsys.readouterr().err
