from __future__ import annotations

from pathlib import Path

import pytest
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.events.settings import Settings
from cryptography.exceptions import InvalidTag


def test_defaults_generate_development_secrets_once(tmp_path: Path) -> None:
    env = {"CONSENTINEL_HOME": str(tmp_path)}
    first = Settings.from_env(env)
    second = Settings.from_env(env)
    assert first.pepper == second.pepper
    assert len(first.pepper.reveal()) >= 32
    assert any("pepper generated" in n for n in first.announcements)
    assert second.announcements == ()
    assert (tmp_path / "secrets" / "dev-pepper").stat().st_mode & 0o077 == 0


def test_every_problem_listed_at_once_and_no_secret_printed(tmp_path: Path) -> None:
    env = {
        "CONSENTINEL_HOME": str(tmp_path),
        "CONSENTINEL_ENV": "production",
        "CONSENTINEL_PARTITIONS": "many",
        "CONSENTINEL_GRACE_SECONDS": "-4",
        "CONSENTINEL_R13_STRENGTH": "loud",
        "CONSENTINEL_BOOTSTRAP_SERVERS": "kafka",
        "CONSENTINEL_TOKEN": "supersecret-but-short",
        "CONSENTINEL_WITHDRAWAL_ALLOWANCE": "email=1,fax=2",
    }
    with pytest.raises(FatalConfigError) as err:
        Settings.from_env(env)
    text = str(err.value)
    assert len(err.value.problems) == 6, err.value.problems
    for needle in (
        "CONSENTINEL_PARTITIONS",
        "CONSENTINEL_GRACE_SECONDS",
        "R13_STRENGTH",
        "BOOTSTRAP_SERVERS",
        "PEPPER_FILE",
        "fax",
    ):
        assert needle in text
    assert "supersecret" not in text


def test_settings_file_and_env_precedence(tmp_path: Path) -> None:
    f = tmp_path / "settings.yaml"
    f.write_text("partitions: 3\ngrace_seconds: 30\n")
    s = Settings.from_env(
        {
            "CONSENTINEL_HOME": str(tmp_path),
            "CONSENTINEL_SETTINGS_FILE": str(f),
            "CONSENTINEL_PARTITIONS": "8",
        }
    )
    assert (s.partitions, s.grace_seconds) == (8, 30.0)


def test_secrets_never_print(tmp_path: Path) -> None:
    s = Settings.from_env({"CONSENTINEL_HOME": str(tmp_path), "CONSENTINEL_PEPPER": "p" * 40})
    assert "pppp" not in repr(s) and "pppp" not in str(s.describe())
    assert s.describe()["pepper"] == "Secret('***')"


def test_sealer_round_trip_and_tamper() -> None:
    sealer = Sealer(b"x" * 32)
    sealed = sealer.seal(b'{"email":"ana@example.org"}', "mandrill")
    assert "ana" not in sealed
    assert sealer.open_(sealed, "mandrill") == b'{"email":"ana@example.org"}'
    with pytest.raises(InvalidTag):
        sealer.open_(sealed, "other-context")
    assert Sealer(b"x" * 32).key_id == sealer.key_id != Sealer(b"y" * 32).key_id


def test_gc_threshold_setting(tmp_path: Path) -> None:
    home = {"CONSENTINEL_HOME": str(tmp_path)}
    assert Settings.from_env(home).gc_threshold == 50_000
    assert Settings.from_env({**home, "CONSENTINEL_GC_THRESHOLD": "0"}).gc_threshold == 0
    with pytest.raises(FatalConfigError, match="CONSENTINEL_GC_THRESHOLD"):
        Settings.from_env({**home, "CONSENTINEL_GC_THRESHOLD": "-1"})
