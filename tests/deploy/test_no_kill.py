"""Nothing in deploy/ stops or kills a process it did not start.

- ``deploy/tools.sh`` installs what is missing and does nothing else: run as "root" in a
  sandbox whose ``apt-get``, ``systemctl``, ``pkill``, ``killall``, ``service`` and ``pgrep``
  are recorders, it installs the missing packages and calls none of the others.
- ``deploy/kafka.sh`` signals only the pid in its own pid file, and only while that pid's
  command line is still its broker's: a process that looks exactly like its broker but is
  not named by the pid file survives ``stop`` and ``kill``; a pid file naming an unrelated
  process does not get that process killed; the pid it did write is killed.
- No script under deploy/ kills by name (``pkill``, ``killall``, ``systemctl stop``...), and
  every ``kill`` in a script targets a pid variable.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KAFKA_SH = DEPLOY / "kafka.sh"
RECORDERS = ("systemctl", "pkill", "killall", "service", "pgrep", "kill", "invoke-rc.d")
PACKAGES = ("prometheus", "promtool", "prometheus-alertmanager", "chromium")


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def test_tools_sh_installs_what_is_missing_and_stops_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    sort = shutil.which("sort")
    assert sort, "sort is needed to run deploy/tools.sh"
    (bin_dir / "sort").symlink_to(sort)
    _stub(bin_dir / "id", 'printf "0\\n"\n')  # pretend to be root: the install branch runs
    # apt-get "installs" by creating the commands tools.sh looks for
    creates = "".join(
        f'  printf "#!/bin/bash\\n" > "{bin_dir}/{name}"; /bin/chmod +x "{bin_dir}/{name}"\n'
        for name in PACKAGES
    )
    _stub(
        bin_dir / "apt-get",
        f'printf "apt-get %s\\n" "$*" >> "{calls}"\nif [ "$1" = install ]; then\n{creates}fi\n',
    )
    for name in RECORDERS:
        _stub(bin_dir / name, f'printf "FORBIDDEN {name} %s\\n" "$*" >> "{calls}"\n')

    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    first = subprocess.run(
        ["/bin/bash", str(DEPLOY / "tools.sh")], env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    log = calls.read_text()
    assert "apt-get install" in log, "the missing packages were not installed"
    for pkg in ("prometheus", "prometheus-alertmanager", "chromium"):
        assert pkg in log.split("apt-get install", 1)[1], f"{pkg} was not installed"
    forbidden = [line for line in log.splitlines() if line.startswith("FORBIDDEN")]
    assert forbidden == [], f"deploy/tools.sh stopped or killed something: {forbidden}"

    # the second run finds everything and does nothing at all
    calls.unlink()
    second = subprocess.run(
        ["/bin/bash", str(DEPLOY / "tools.sh")], env=env, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    assert not calls.exists(), calls.read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(*argv: str) -> subprocess.Popen[bytes]:
    """A sleeping process whose command line carries ``argv`` (it ignores them)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def kafka_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """kafka.sh pointed at an empty home and a free port: nothing real is ever in scope."""
    port = _free_port()
    home = tmp_path / "home"
    data = home / f"kafka-data-{port}"
    data.mkdir(parents=True)
    env = {
        **os.environ,
        "CONSENTINEL_HOME": str(home),
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
        "KAFKA_STOP_TIMEOUT": "5",
    }
    env.pop("CONSENTINEL_BOOTSTRAP_SERVERS", None)
    yield env, data


def _kafka(env: dict[str, str], action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KAFKA_SH), action], env=env, capture_output=True, text=True, timeout=60
    )


def _gone(proc: subprocess.Popen[bytes], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def test_kafka_sh_leaves_a_lookalike_it_did_not_start(kafka_env) -> None:  # type: ignore[no-untyped-def]
    env, data = kafka_env
    # exactly the command-line shape is_our_broker() recognises, for this data dir
    lookalike = _spawn("kafka.Kafka", str(data / "server.properties"))
    try:
        time.sleep(0.2)
        for action in ("stop", "kill"):
            done = _kafka(env, action)
            assert lookalike.poll() is None, f"kafka.sh {action} killed a process it did not start"
            assert done.returncode != 0, f"kafka.sh {action} should say it could not act"
            assert str(lookalike.pid) in done.stderr, done.stderr
    finally:
        lookalike.kill()
        lookalike.wait()


def test_kafka_sh_ignores_a_pid_file_naming_another_process(kafka_env) -> None:  # type: ignore[no-untyped-def]
    env, data = kafka_env
    stranger = _spawn("not-a-broker")  # as if the broker died and its pid was reused
    try:
        (data / "kafka.pid").write_text(f"{stranger.pid}\n")
        for action in ("stop", "kill"):
            done = _kafka(env, action)
            assert done.returncode == 0, done.stderr
            assert stranger.poll() is None, f"kafka.sh {action} killed a reused pid"
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize("action", ["stop", "kill"])
def test_kafka_sh_stops_the_pid_it_wrote(kafka_env, action: str) -> None:  # type: ignore[no-untyped-def]
    env, data = kafka_env
    ours = _spawn("kafka.Kafka", str(data / "server.properties"))
    try:
        (data / "kafka.pid").write_text(f"{ours.pid}\n")
        done = _kafka(env, action)
        assert done.returncode == 0, done.stderr
        assert _gone(ours), f"kafka.sh {action} did not stop the broker named by its pid file"
        if action == "kill":
            assert ours.returncode == -signal.SIGKILL
        assert not (data / "kafka.pid").exists()
    finally:
        if ours.poll() is None:
            ours.kill()
            ours.wait()


_BY_NAME = re.compile(
    r"\b(pkill|killall|pgrep)\b|\bsystemctl\s+(stop|kill|restart|disable|mask)\b"
    r"|\bservice\s+\S+\s+stop\b|\binvoke-rc\.d\b"
)
_KILL = re.compile(r"(?:^|[;&|(]\s*|\b(?:then|do|else)\s+)kill\s+(?:-\w+\s+)*(\S+)")
_PID_TARGET = re.compile(r'^"?\$\{?pids?\b')


def _scripts() -> list[Path]:
    files = [p for p in DEPLOY.rglob("*") if p.is_file()]
    return [p for p in files if p.suffix in (".sh", ".yaml", ".yml", "") or p.name == "Dockerfile"]


def test_no_script_in_deploy_kills_by_name() -> None:
    scripts = _scripts()
    assert KAFKA_SH in scripts and DEPLOY / "tools.sh" in scripts
    problems = []
    for path in scripts:
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            code = line.strip()
            if code.startswith("#"):
                continue
            if _BY_NAME.search(code):
                problems.append(f"{path.relative_to(ROOT)}:{n}: {code}")
            for target in _KILL.findall(code):
                if not _PID_TARGET.match(target):
                    problems.append(f"{path.relative_to(ROOT)}:{n}: kill of {target}: {code}")
    assert problems == [], "deploy/ may signal only pids it started:\n" + "\n".join(problems)


def test_the_scan_sees_a_kill_by_name(tmp_path: Path) -> None:
    """The scan above is not blind: the old installer's lines are caught."""
    old = 'pkill -f "^/usr/bin/$svc"', 'systemctl stop "$svc"', "kill -TERM $(pgrep java)"
    assert all(_BY_NAME.search(line) for line in old[:2])
    assert not _PID_TARGET.match(_KILL.findall(old[2])[0])
