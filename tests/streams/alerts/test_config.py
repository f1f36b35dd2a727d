"""The sinks file: secrets by reference, every problem listed at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from consentinel.streams.alerts import config
from consentinel.streams.alerts.sinks.alertmanager import AlertmanagerSink
from consentinel.streams.alerts.sinks.slack import SlackSink
from consentinel.streams.alerts.sinks.smtp import EmailSink
from consentinel.streams.alerts.sinks.webhook import WebhookSink
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.settings import Settings

SETTINGS = Settings(web_host="127.0.0.1", console_port=8686)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sinks.yaml"
    path.write_text(text)
    return path


def test_no_file_means_console_only() -> None:
    cfg = config.load(None, SETTINGS)
    assert cfg.sinks == [] and cfg.console_url == "http://127.0.0.1:8686"
    assert "console only" in cfg.source


def test_a_full_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOC_SECRET", "soc-secret-0123456789abcdef")
    monkeypatch.setenv("SMTP_PASSWORD", "pw-0123")
    slack_url = tmp_path / "slack-url"
    slack_url.write_text("https://hooks.slack.test/services/T/B/xyz\n")
    path = _write(
        tmp_path,
        f"""
console_url: https://consentinel.example.org
incidents: {{window_hours: 6, sample_alert_ids: 5}}
retry: {{initial_seconds: 2, max_seconds: 120}}
sinks:
  - {{name: oncall, type: alertmanager, url: "http://127.0.0.1:9093", refresh_seconds: 30,
      labels: {{team: dpo}}}}
  - {{name: soc, type: webhook, url: "https://soc.test/hook", secret: "env:SOC_SECRET",
      retry: {{initial_seconds: 0.5, max_seconds: 10}}}}
  - {{name: chat, type: slack, url: "file:{slack_url}"}}
  - name: mail
    type: email
    host: smtp.test
    username: consentinel
    password: env:SMTP_PASSWORD
    sender: consentinel@monitor.test
    to: [dpo@company.test]
""",
    )
    cfg = config.load(path, SETTINGS)
    assert cfg.console_url == "https://consentinel.example.org"
    assert (cfg.window_hours, cfg.sample_alert_ids) == (6.0, 5)
    sinks = {s.sink.name: s for s in cfg.sinks}
    assert [type(s.sink) for s in cfg.sinks] == [
        AlertmanagerSink,
        WebhookSink,
        SlackSink,
        EmailSink,
    ]
    am = sinks["oncall"].sink
    assert isinstance(am, AlertmanagerSink)
    assert am.refresh_seconds == 30 and am.labels == {"team": "dpo"}
    assert (sinks["oncall"].backoff.initial_s, sinks["oncall"].backoff.max_s) == (2.0, 120.0)
    assert (sinks["soc"].backoff.initial_s, sinks["soc"].backoff.max_s) == (0.5, 10.0)
    mail = sinks["mail"].sink
    assert isinstance(mail, EmailSink) and mail.port == 587 and mail.security == "starttls"
    assert "soc-secret" not in repr(cfg) and "pw-0123" not in repr(cfg)


def test_every_problem_is_listed_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = _write(
        tmp_path,
        """
sinks:
  - {name: a, type: webhook, url: "https://x.test", secret: "inline-secret-0123456789"}
  - {name: b, type: slack, url: "https://hooks.slack.test/services/T/B/xyz"}
  - {name: c, type: pager}
  - {name: d, type: alertmanager, url: "ftp://x", colour: red}
  - {name: a, type: webhook, url: "https://y.test", secret: "env:NOT_SET_ANYWHERE"}
  - {name: e, type: email, host: h, sender: me, to: [x@y.test], security: ssl}
""",
    )
    with pytest.raises(FatalConfigError) as err:
        config.load(path, SETTINGS)
    text = str(err.value)
    expected = [
        "sink 'a': 'secret' must be a reference, not the secret itself",
        "sink 'b': 'url' of a Slack webhook is a secret",
        "sink 'c': unknown type 'pager'",
        "sink 'd': 'url' should be an http:// or https:// URL",
        "sink 'd': unknown option(s) 'colour'",
        "sink 'a': another sink has the same name",
        "'secret' refers to $NOT_SET_ANYWHERE, which is not set",
        "sink 'e': 'security' = 'ssl': expected one of none, starttls, tls",
        "sink 'e': 'sender' and 'to' should be e-mail addresses",
    ]
    for line in expected:
        assert line in text
    assert len(err.value.problems) == len(expected)
    assert "inline-secret" not in text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "expected a mapping with 'sinks:'"),
        ("sinks: {a: 1}", "'sinks' should be a list"),
        ("sinks: [{type: webhook}]", "'name' is required"),
        ("sinks:\n  - {name: x, type: webhook, url: 'https://x'", "not valid YAML"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(FatalConfigError, match="sinks file") as err:
        config.load(_write(tmp_path, text), SETTINGS)
    assert problem in str(err.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FatalConfigError, match="cannot read"):
        config.load(tmp_path / "nope.yaml", SETTINGS)


def test_the_shipped_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(config.__file__).with_name("sinks.example.yaml")
    slack_url = tmp_path / "slack-url"
    slack_url.write_text("https://hooks.slack.test/services/T/B/xyz")
    text = example.read_text().replace("/run/secrets/slack-webhook-url", str(slack_url))
    monkeypatch.setenv("CONSENTINEL_SOC_WEBHOOK_SECRET", "soc-secret-0123456789abcdef")
    monkeypatch.setenv("CONSENTINEL_SMTP_PASSWORD", "pw")
    cfg = config.load(_write(tmp_path, text), SETTINGS)
    assert [s.sink.name for s in cfg.sinks] == ["oncall", "soc", "chat", "dpo-mail"]
