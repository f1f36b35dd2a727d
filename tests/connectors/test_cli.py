"""`consentinel connectors list|test`."""

from __future__ import annotations

from pathlib import Path

import pytest
from consentinel.connectors import cli
from consentinel.connectors.auth import basic_auth_header
from consentinel.connectors.declarative import EXAMPLES

SAMPLES = Path(__file__).parent / "declarative" / "samples"
MAPPING = str(EXAMPLES / "postmark.yaml")


def test_list_shows_builtins_and_declarative(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("mandrill", "twilio", "onetrust", "postmark"):
        assert f"\n{name} " in out
    assert "[declarative]" in out and "auth: HTTP Basic" in out


def test_dry_run_prints_masked_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["test", MAPPING, str(SAMPLES / "postmark_spam.json")]) == 0
    out = capsys.readouterr().out
    assert "verification: skipped (no --header given)" in out
    assert '"kind":"complaint"' in out and '"action":"withdraw"' in out
    assert "b***@e***.com" in out and "ben.ode" not in out
    assert "1 usage and 1 consent event(s)" in out


def test_refusal_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = tmp_path / "s.json"
    sample.write_text('{"RecordType":"Open","MessageID":"1","Recipient":"x@example.org"}')
    assert cli.main(["test", MAPPING, str(sample)]) == 1
    out = capsys.readouterr().out
    assert "REFUSED: no event time" in out and "[missing_time]" in out
    assert "x@example.org" not in out


def _config(tmp_path: Path) -> Path:
    conf = tmp_path / "c.yaml"
    conf.write_text(
        f"- name: pm\n  type: declarative\n  mapping: {MAPPING}\n  controller: acme\n"
        "  secrets: {username: env:T_PM_USER, password: env:T_PM_PASSWORD}\n"
    )
    return conf


def test_verification_with_instance_and_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for k, v in {
        "T_PM_USER": "u",
        "T_PM_PASSWORD": "p-0123456789",
        "CONSENTINEL_ENV": "test",
        "CONSENTINEL_HOME": str(tmp_path),
        "CONSENTINEL_PEPPER": "pepper-0123456789abcdef",
        "CONSENTINEL_TOKEN": "token-0123456789abcdef",
    }.items():
        monkeypatch.setenv(k, v)
    conf = str(_config(tmp_path))
    sample = str(SAMPLES / "postmark_open.json")
    good = f"Authorization: {basic_auth_header('u', 'p-0123456789')}"
    args = ["test", "postmark", sample, "--config", conf, "--instance", "pm", "-H"]
    assert cli.main([*args, good]) == 0
    assert "verification: passed" in capsys.readouterr().out
    bad = f"Authorization: {basic_auth_header('u', 'nope')}"
    assert cli.main([*args, bad]) == 2
    assert "NOT AUTHENTIC" in capsys.readouterr().out


def test_rows_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "rows.csv"
    f.write_text(
        "RecordType,MessageID,Recipient,DeliveredAt\n"
        "Delivery,1,a@example.org,2026-01-05T16:33:54Z\n"
        "Delivery,2,nope,2026-01-05T16:33:54Z\n"
    )
    assert cli.main(["test", MAPPING, str(f), "--rows"]) == 1
    out = capsys.readouterr().out
    assert "line 3: REFUSED" in out and "1 usage and 0 consent event(s), 1 record(s) refused" in out
