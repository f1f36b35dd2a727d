"""The Prometheus rules load (`promtool check rules`) and fire exactly as their unit tests say
(`promtool test rules dashboards/prometheus/tests/*.yaml`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
RULES_DIR = ROOT / "dashboards" / "prometheus"
RULES = RULES_DIR / "consentinel.rules.yaml"
UNIT_TESTS = sorted((RULES_DIR / "tests").glob("*.yaml"))


def _promtool() -> str:
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(path).exists():
        pytest.fail("promtool is missing: run `make setup` (deploy/tools.sh installs it)")
    return path


def _run(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_rules() -> None:
    done = _run("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no rule unit tests in dashboards/prometheus/tests/"
    done = _run("test", "rules", *map(str, UNIT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout


def test_every_alert_has_a_unit_test_and_a_message() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested: set[str] = set()
    fired: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for t in case.get("alert_rule_test", []):
                tested.add(t["alertname"])
                if t.get("exp_alerts"):
                    fired.add(t["alertname"])
    assert set(alerts) - fired == set(), f"alerts never shown firing: {set(alerts) - fired}"
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert rule["labels"]["team"] in ("compliance", "platform"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The harness notices a failing unit test (so the test above can fail)."""
    (tmp_path / "tests").mkdir()
    shutil.copy(RULES, tmp_path / RULES.name)
    text = UNIT_TESTS[0].read_text(encoding="utf-8")
    broken = text.replace("team: platform", "team: nobody", 1)
    assert broken != text
    (tmp_path / "tests" / "broken.yaml").write_text(broken, encoding="utf-8")
    done = _run("test", "rules", "tests/broken.yaml", cwd=tmp_path)
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr
