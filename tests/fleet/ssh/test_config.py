"""ssh_config reading: Include (globs, relative paths, nesting), the user's file before the
system's, and lookups through paramiko's matching (table tests, files in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageserving_fleet.errors import SshConfigError, UsageError
from imageserving_fleet.fleet.ssh import Connector
from imageserving_fleet.fleet.ssh.config import SshConfigFiles, read_ssh_config
from imageserving_fleet.fleet.target import FleetOptions, make_target

from .helpers import NO_OPTIONS


@pytest.mark.parametrize(("files", "host", "expected"), [
    # The first value obtained wins, as in OpenSSH.
    ({"config": "Host web\n    Port 2200\nHost *\n    Port 22\n"}, "web", {"port": "2200"}),
    ({"config": "Host *\n    User all\nHost web\n    User web\n"}, "web", {"user": "all"}),
    # Include by glob, inlined where it stands; files in sorted order.
    ({"config": "Include {d}/conf.d/*.conf\nHost *\n    Port 22\n",
      "conf.d/b.conf": "Host web\n    User b\n", "conf.d/a.conf": "Host web\n    Port 2345\n    User a\n"},
     "web", {"port": "2345", "user": "a"}),
    # A relative Include is under the base directory (~/.ssh for a user's file).
    ({"config": "Include rel.conf\n", "rel.conf": "Host web\n    HostName 10.0.0.9\n"}, "web",
     {"hostname": "10.0.0.9"}),
    # Nested includes; a pattern that matches nothing is no error.
    ({"config": "Include one\nInclude none-*\n", "one": "Include two\n", "two": "Host *\n    Port 2022\n"},
     "any", {"port": "2022"}),
    ({"config": "Host web\n    IdentityFile ~/k1\n    IdentityFile ~/k2\n"}, "web", {"identityfile": ["~/k1", "~/k2"]}),
    ({"config": "Host behind\n    ProxyCommand ssh gw -W %h:%p\n"}, "behind",
     {"proxycommand": "ssh gw -W %h:%p"}),  # %h %p left for us: the values we actually use
])
def test_lookup(tmp_path: Path, files: dict[str, str], host: str, expected: dict[str, object]) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text.replace("{d}", str(tmp_path)))
    text = read_ssh_config(str(tmp_path / "config"), str(tmp_path))
    path = tmp_path / "flat"
    path.write_text(text)
    found = SshConfigFiles(str(path)).lookup(None, host)
    for key, value in expected.items():
        assert found.get(key) == (value if key != "identityfile" else [str(Path(v).expanduser()) for v in value]), key


def test_include_loops_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config").write_text(f"Include {tmp_path}/config\n")
    with pytest.raises(SshConfigError, match="nested too deeply"):
        read_ssh_config(str(tmp_path / "config"), str(tmp_path))


def test_a_missing_ssh_config_is_a_usage_error_before_any_host(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--ssh-config"):
        SshConfigFiles(str(tmp_path / "nope"))


def test_a_host_named_file_is_read_once_beside_the_runs(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("Host *\n    User run\n")
    (tmp_path / "own").write_text("Host *\n    User own\n")
    files = SshConfigFiles(str(tmp_path / "run"))
    assert files.lookup(None, "h")["user"] == "run"
    assert files.lookup(str(tmp_path / "own"), "h")["user"] == "own"
    assert files.lookup(None, "h") is files.lookup(None, "h")  # cached per (file, host)


def test_settings_follow_include(tmp_path: Path) -> None:  # through the Connector, as a run reads it
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "hosts.conf").write_text("Host inc\n    Port 2345\n")
    config = tmp_path / "config"
    config.write_text(f"Include {tmp_path}/conf.d/*.conf\nHost *\n    Port 22\n")
    connector = Connector(FleetOptions(ssh_config=str(config)))
    assert connector.settings(make_target("inc", {}, NO_OPTIONS)).port == 2345


def test_paramiko_loads_without_invoke_and_match_exec_still_runs_its_command(tmp_path: Path) -> None:
    """invoke (asyncio, unittest.mock) is imported only when a `Match exec` is evaluated: a fresh
    interpreter, as a controller starts."""
    import subprocess
    import sys

    marker = tmp_path / "ran"
    config = tmp_path / "config"
    config.write_text(f'Match exec "touch {marker}"\n    User matched\n')
    script = f"""
import sys
from imageserving_fleet.fleet.ssh.base import load_paramiko
from imageserving_fleet.fleet.ssh.config import SshConfigFiles
load_paramiko()
print("before", "invoke.context" in sys.modules, "asyncio" in sys.modules)
print("user", SshConfigFiles({str(config)!r}).lookup(None, "web").get("user"))
print("after", "invoke.context" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["before False False", "user matched", "after True"], out
    assert marker.exists()
