"""What the console's server writes to its logs and where it redirects (issue #11, hygiene):
the token never in the access log, no raw request bytes on a protocol error, no off-site
redirect, CSV cells quoted the OWASP way, and ``--help`` writes no file."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from alerting import alert
from consentinel.streams import cli
from consentinel.streams.alerts import console
from consentinel.streams.alerts.console_evidence import evidence_csv
from consentinel.streams.alerts.http_hygiene import SERVER_OPTIONS
from consentinel.streams.alerts.store import IncidentStore

TOKEN = "test-token-0123456789abcdef"
ADDRESS = "ana.lopez@example.org"


@pytest.fixture
async def server(tmp_path: Path, make_settings) -> AsyncIterator[TestServer]:
    store = IncidentStore(tmp_path / "incidents.db")
    app = console.make_app(make_settings(), store, [], poll_s=0.05)
    srv = TestServer(app)
    await srv.start_server(**SERVER_OPTIONS)  # what `consentinel console` runs with
    yield srv
    await srv.close()
    store.close()


async def _raw(server: TestServer, request: bytes) -> bytes:
    """Send ``request`` as bytes on a fresh connection; the answer's head."""
    assert server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    finally:
        writer.close()


def _location(head: bytes) -> str:
    for line in head.decode("latin-1").split("\r\n"):
        if line.lower().startswith("location:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Location header in {head!r}")


async def test_the_token_never_reaches_the_access_log(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    head = await _raw(server, f"GET /?token={TOKEN}&x=1 HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 303")
    for _ in range(100):  # the access line is written after the answer
        if "token=***" in caplog.text:
            break
        await asyncio.sleep(0.05)
    assert "token=***" in caplog.text and "x=1" in caplog.text, caplog.text
    assert TOKEN not in caplog.text


async def test_a_request_aiohttp_cannot_parse_logs_no_bytes(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = f"{ADDRESS} wants this logged".encode()
    request = b"CONNECT example.org:443 HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    await _raw(server, request)
    for _ in range(100):
        if "not valid HTTP" in caplog.text:
            break
        await asyncio.sleep(0.05)
    assert "not valid HTTP" in caplog.text, caplog.text
    assert ADDRESS not in caplog.text and "wants this" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    "target", ["//evil.example/?token=" + TOKEN, "/\\evil.example/?token=" + TOKEN,
               "///evil.example/x?token=" + TOKEN],
)  # fmt: skip
async def test_the_token_redirect_never_leaves_the_site(server: TestServer, target: str) -> None:
    head = await _raw(server, f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 303"), head
    location = _location(head)
    assert location.startswith("/"), location
    assert not location.startswith("//") and not location.startswith("/\\"), location
    assert "evil.example" in location  # kept as a path on this site, not as a host
    assert TOKEN not in location


@pytest.mark.parametrize(
    "value",
    ["=1+1", "+A1", "-1+1", "@SUM(A1)", "\tx", "\rx", "\nx", " =1+1",
     "\uff1d1+1", "\uff0bA1", "\uff0d1", "\uff20x", "+33 6** ** ** 12"],
)  # fmt: skip
def test_csv_cells_that_start_like_a_formula_are_quoted(value: str) -> None:
    text = evidence_csv([alert("e1", campaign=value, controller=value)])
    (row,) = csv.DictReader(io.StringIO(text))
    assert row["campaign_id"] == "'" + value
    assert row["controller"] == "'" + value


def test_csv_cells_that_are_plain_text_are_left_alone() -> None:
    text = evidence_csv([alert("e1", campaign="politics-27", controller="broker lists")])
    (row,) = csv.DictReader(io.StringIO(text))
    assert (row["campaign_id"], row["controller"], row["revision"]) == (
        "politics-27",
        "broker lists",
        "1",
    )


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_writes_no_file(command: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTINEL_") and k != "HOME"}
    env.update(HOME=str(tmp_path), CONSENTINEL_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-m", "consentinel.streams.cli", command, "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.strip(), f"`consentinel {command} --help` printed nothing"
    written = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")]
    assert written == [], f"`consentinel {command} --help` wrote {written}"
