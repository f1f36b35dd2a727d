from __future__ import annotations

import sys
import types

import pytest
from consentinel.connectors import registry
from consentinel.connectors.contract import Connector, Output, Request


class Plugged(Connector):
    name = "plugged"
    title = "A plugin connector"
    produces = "usage"
    auth = "none"

    def verify(self, request: Request) -> None:
        return None

    def map_request(self, request: Request) -> Output:
        return Output()


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_plugin_pkg")
    module.Plugged = Plugged  # type: ignore[attr-defined]
    module.NotAConnector = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_plugin_pkg", module)
    monkeypatch.setattr(
        registry,
        "_entry_points",
        lambda: {
            "plugged": ("fake_plugin_pkg:Plugged", "plugin fake"),
            "broken": ("no_such_module_anywhere:Thing", "plugin broken"),
            "wrong": ("fake_plugin_pkg:NotAConnector", "plugin wrong"),
        },
    )


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(registry.UnknownConnector) as info:
        registry.get("mandril")
    assert "mandrill" in str(info.value) and "twilio" in str(info.value)


def test_entry_point_connector_found(plugins: None) -> None:
    assert registry.get("plugged") is Plugged
    assert "plugged" in registry.known_names()


def test_broken_plugin_reported_not_fatal(plugins: None) -> None:
    with pytest.raises(registry.BrokenConnector, match="no_such_module_anywhere"):
        registry.get("broken")
    with pytest.raises(registry.BrokenConnector, match="not a Connector subclass"):
        registry.get("wrong")
    entries = {e.name: e for e in registry.discover()}
    assert entries["plugged"].cls is Plugged and entries["plugged"].problem is None
    assert entries["broken"].cls is None and "cannot be loaded" in (entries["broken"].problem or "")
    assert entries["wrong"].problem
    assert set(registry.BUILTINS) <= set(entries)


def test_registered_class_wins_and_unregisters() -> None:
    registry.register(Plugged)
    try:
        assert registry.get("plugged") is Plugged
    finally:
        registry.unregister("plugged")
    with pytest.raises(registry.UnknownConnector):
        registry.get("plugged")


def test_importing_connectors_pulls_in_no_faust() -> None:
    import subprocess

    code = (
        "import sys, consentinel.connectors, consentinel.connectors.registry, "
        "consentinel.connectors.config, consentinel.connectors.testkit, "
        "consentinel.connectors.declarative, consentinel.connectors.runtime.server, "
        "consentinel.connectors.runtime.file_import, consentinel.connectors.cli; "
        "bad = [m for m in sys.modules if m == 'faust' or m.startswith('faust.')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
