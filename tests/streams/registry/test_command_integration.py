"""`consentinel registry apply|show` on the real broker, through the console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from consentinel.streams.events import codec
from consentinel.streams.events.settings import Settings
from consentinel.streams.registry.topic import read_all

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "registry.example.yaml"
EXE = Path(sys.executable).parent / "consentinel"


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "CONSENTINEL_ENV": "test",
        "CONSENTINEL_HOME": str(settings.home),
        "CONSENTINEL_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "CONSENTINEL_TOPIC_PREFIX": settings.topic_prefix,
        "CONSENTINEL_PEPPER": settings.pepper.reveal().decode(),
        "CONSENTINEL_TOKEN": settings.token.reveal().decode(),
    }
    return subprocess.run(
        [str(EXE), "registry", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _in_force(settings: Settings) -> set[str]:
    topic = settings.topic("consentinel.registry.v1")
    return set(read_all(settings.bootstrap_servers, topic).snapshot())


def test_apply_show_prune(kafka_settings: Settings, tmp_path: Path) -> None:
    first = _run(kafka_settings, "apply", str(EXAMPLE))
    assert first.returncode == 0, first.stderr
    assert "5 new, 0 changed, 0 unchanged" in first.stdout
    assert len(_in_force(kafka_settings)) == 5

    again = _run(kafka_settings, "apply", str(EXAMPLE))
    assert again.returncode == 0 and "0 new, 0 changed, 5 unchanged" in again.stdout

    shown = _run(kafka_settings, "show")
    assert shown.returncode == 0, shown.stderr
    assert "campaign:municipales-2026-dupont" in shown.stdout
    assert "political.communication" in shown.stdout
    assert "5 declaration(s) in force" in shown.stdout

    # a file without the political campaign and with the newsletter changed
    text = EXAMPLE.read_text()
    start = text.index("  - campaign: municipales-2026-dupont")
    end = text.index("  # Order confirmations")
    smaller = tmp_path / "registry.yaml"
    smaller.write_text(
        text[:start].replace(
            "legal_basis: consent\n    sourcing: own\n    promotional: false",
            "legal_basis: consent\n    sourcing: own\n    promotional: true",
            1,
        )
        + text[end:]
    )
    kept = _run(kafka_settings, "apply", str(smaller))
    assert kept.returncode == 0, kept.stderr
    assert "1 changed" in kept.stdout and "still in force" in kept.stdout
    assert "campaign:municipales-2026-dupont" in _in_force(kafka_settings)

    pruned = _run(kafka_settings, "apply", str(smaller), "--prune")
    assert pruned.returncode == 0 and "tombstoned" in pruned.stdout
    assert _in_force(kafka_settings) == {
        "list:lequotidien-morning",
        "sender:shop-notifications",
        "sender:36180",
        "campaign:solar-leads-q3",
    }


def test_an_invalid_file_publishes_nothing(kafka_settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "declarations:\n"
        "  - campaign: fine\n    controller: acme\n    purpose: marketing.direct\n"
        "    channel: email\n"
        "  - campaign: broken\n    controller: acme\n    purpose: spam\n    channel: email\n"
    )
    result = _run(kafka_settings, "apply", str(bad))
    assert result.returncode == 65
    assert "line 6" in result.stderr and "spam" in result.stderr
    assert "nothing was published" in result.stderr
    assert _in_force(kafka_settings) == set()


def test_export_writes_the_records_of_processing(kafka_settings: Settings, tmp_path: Path) -> None:
    assert _run(kafka_settings, "apply", str(EXAMPLE)).returncode == 0
    as_csv = _run(kafka_settings, "export", "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    lines = as_csv.stdout.splitlines()
    assert lines[0].startswith("record,controller,purpose") and len(lines) == 6
    out = tmp_path / "art30.json"
    as_json = _run(kafka_settings, "export", "--format", "json", "--out", str(out))
    assert as_json.returncode == 0, as_json.stderr
    assert "wrote 5 record(s)" in as_json.stderr
    rows = codec.loads(out.read_bytes())
    assert {r["record"] for r in rows} == _in_force(kafka_settings)
    assert all(r["legal_basis"] and r["controller"] for r in rows)
