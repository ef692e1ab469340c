"""remote.py: the agent's command line, quoted for any POSIX sh (table tests; each line is also
run through a real /bin/sh to prove what the agent would receive)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from imageserving_fleet.errors import UsageError
from imageserving_fleet.fleet import remote
from imageserving_fleet.fleet.target import FleetOptions, make_target


@pytest.mark.parametrize(("path", "quoted"), [
    ("~", '"$HOME"'),
    ("~/x", '"$HOME"/x'),
    ("~/a b", "\"$HOME\"/'a b'"),
    ("/opt/is", "/opt/is"),
    ("/opt/it's", "'/opt/it'\"'\"'s'"),
    ("~other/x", "'~other/x'"),  # only the login user's home is expanded
    ("$(reboot)", "'$(reboot)'"),
])
def test_quote_path(path: str, quoted: str) -> None:
    assert remote.quote_path(path) == quoted


@pytest.mark.parametrize(("cid", "expected"), [("ps", "ps"), ("IS", "is"), ("my-svc_2", "my-svc_2")])
def test_check_id_accepts(cid: str, expected: str) -> None:
    assert remote.check_id(cid) == expected


@pytest.mark.parametrize("cid", ["", "1ps", "ps;rm", "a" * 33, "p s", "$(x)", "ps\n"])
def test_check_id_refuses(cid: str) -> None:
    with pytest.raises(UsageError, match="invalid component id"):
        remote.check_id(cid)


ARGV = 'for a in "$@"; do printf "%s\\n" "$a"; done'


@pytest.mark.parametrize(("vars", "args", "argv"), [
    ({}, ("status", "--json"), ["status", "--json"]),
    ({"imageserving_home": "/srv/it's here"}, ("status",), ["--home", "/srv/it's here", "status"]),
    ({"imageserving_config": "~/cfg.yaml"}, ("start",), ["--config", "HOME/cfg.yaml", "start"]),
    ({"imageserving_home": "$(touch /tmp/pwned)"}, ("status",), ["--home", "$(touch /tmp/pwned)", "status"]),
])
def test_agent_command_passes_every_argument_intact(vars: dict[str, Any], args: tuple[str, ...],
                                                    argv: list[str]) -> None:
    # The agent is a shell function printing its argv, one per line: what exec would hand it.
    target = make_target("h", {**vars, "imageserving_command": "/bin/agent"}, FleetOptions())
    line = remote.agent_command(target, args).replace("exec /bin/agent", "agent")
    out = subprocess.run(["/bin/sh", "-c", f'agent() {{ {ARGV}; }}; {line}'], capture_output=True, text=True,
                         env={"HOME": "HOME", "PATH": "/usr/bin:/bin"}, check=True).stdout
    assert out.splitlines() == argv


@pytest.mark.parametrize(("vars", "starts", "contains"), [
    ({}, "a=\"$HOME\"/.imageserving/venv/bin/imageserving;", 'exec "$a" status'),
    ({"imageserving_venv": "/opt/v"}, "a=/opt/v/bin/imageserving;", "|| a=imageserving;"),
    ({"imageserving_command": "~/bin/is"}, 'exec "$HOME"/bin/is', ""),
    ({"ansible_become": True}, "sudo -n -- sh -c ", ""),
    ({"ansible_become": True, "ansible_become_user": "svc"}, "sudo -n -u svc -- sh -c ", ""),
])
def test_agent_command_shapes(vars: dict[str, Any], starts: str, contains: str) -> None:
    line = remote.agent_command(make_target("h", vars, FleetOptions()), ("status",))
    assert line.startswith(starts) and contains in line


def test_with_password_reads_it_from_stdin_never_argv() -> None:
    target = make_target("h", {"ansible_become": True, "ansible_become_user": "svc"}, FleetOptions())
    line = remote.with_password(target, ("status",))
    assert line.startswith("sudo -S -p '' -u svc -- sh -c ") and "-n" not in line.split(" -- ")[0]
