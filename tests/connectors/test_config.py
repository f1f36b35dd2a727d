"""The instances file: validated at load, every problem with its line and instance."""

from __future__ import annotations

from pathlib import Path

import pytest
from consentinel.connectors import config
from consentinel.connectors.declarative import EXAMPLES
from consentinel.streams.events.errors import FatalConfigError

POSTMARK = str(EXAMPLES / "postmark.yaml")


def _load(text: str, make_settings, environ: dict[str, str] | None = None, **kw):  # type: ignore[no-untyped-def]
    return config.load_text(
        text, make_settings(**kw), name="c.yaml", base_dir=Path("/"), environ=environ or {}
    )


def test_declarative_instance_loads(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret_file = tmp_path / "pw"
    secret_file.write_text("file-password-123\n")
    text = f"""\
instances:
  - name: postmark-main
    type: declarative
    mapping: {POSTMARK}
    controller: acme-sas
    tenant: acme
    public_url: https://hooks.acme.example/postmark
    purpose_map: {{newsletter: marketing}}
    secrets:
      username: env:PM_USER
      password: file:{secret_file}
"""
    cfg = _load(text, make_settings, {"PM_USER": "postmark"})
    inst = cfg.get("postmark-main")
    assert inst.type == "declarative" and inst.controller == "acme-sas"
    assert inst.default_region == "FR"
    assert inst.secret("password") == b"file-password-123"
    assert inst.secret("username") == b"postmark"
    assert inst.options["mapping"] == POSTMARK
    assert cfg.classes["postmark-main"].name == "postmark"
    assert "file-password" not in repr(inst)


def test_every_problem_listed_with_line_and_instance(make_settings) -> None:  # type: ignore[no-untyped-def]
    text = f"""\
- name: Bad Name
  type: declarative
  mapping: {POSTMARK}
  controller: acme
  secrets: {{username: env:NOPE_USER, password: hunter2-plain}}
- name: second
  type: mandril
  controller: acme
- name: third
  type: declarative
  mapping: {POSTMARK}
  controller: acme
  colour: blue
  default_region: France
  options: {{speed: 3}}
  secrets: {{username: env:U, extra: env:U}}
- name: second
  type: declarative
"""
    with pytest.raises(FatalConfigError) as info:
        _load(text, make_settings, {"U": "u"})
    problems = info.value.problems
    text_all = "\n".join(problems)
    expected = [
        "c.yaml:1 (instance 'Bad Name'): the name must be lowercase",
        "c.yaml:5 (instance 'Bad Name'): secret `username`: environment variable NOPE_USER",
        "c.yaml:5 (instance 'Bad Name'): secret `password` is written in plain text",
        "c.yaml:7 (instance 'second'): no connector named 'mandril'",
        "c.yaml:13 (instance 'third'): unknown key `colour`",
        "c.yaml:14 (instance 'third'): `default_region` must be like FR",
        "c.yaml:15 (instance 'third'): unknown option `speed` for postmark",
        "c.yaml:16 (instance 'third'): unknown secret `extra` for postmark",
        "(instance 'third'): postmark needs secret `password`",
        "c.yaml:17 (instance 'second'): type declarative needs `mapping: FILE`",
    ]
    for line in expected:
        assert line in text_all, line
    assert "hunter2" not in text_all


def test_plain_secret_allowed_in_development(make_settings, capsys) -> None:  # type: ignore[no-untyped-def]
    text = f"""\
- name: pm
  type: declarative
  mapping: {POSTMARK}
  controller: acme
  secrets: {{username: u, password: plain-dev-password}}
"""
    cfg = _load(text, make_settings, env="development")
    assert cfg.get("pm").secret("password") == b"plain-dev-password"
    assert "development only" in capsys.readouterr().err


def test_missing_file_says_what_to_do(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FatalConfigError, match="--config"):
        config.load(tmp_path / "nope.yaml", make_settings())


def test_unknown_instance_lists_known(make_settings) -> None:  # type: ignore[no-untyped-def]
    cfg = _load("instances: []", make_settings)
    with pytest.raises(Exception, match="no connector instance named 'x'"):
        cfg.get("x")


def test_example_file_is_valid(make_settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """deploy/connectors.example.yaml validates with every env: secret set."""
    import re

    path = Path(__file__).parents[2] / "deploy" / "connectors.example.yaml"
    text = path.read_text()
    env = {var: "example-secret-value-0123" for var in re.findall(r"env:([A-Z0-9_]+)", text)}
    from consentinel.connectors import registry

    loadable = []
    for entry in registry.discover():
        if entry.origin == "builtin" and entry.cls is not None:
            loadable.append(entry.name)
    cfg = config.load_text(text, make_settings(), name=str(path), base_dir=path.parent, environ=env)
    types = {i.type for i in cfg.instances.values()}
    assert set(loadable) <= types, f"example lacks built-ins {set(loadable) - types}"
    assert "declarative" in types
