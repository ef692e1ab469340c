"""Every refusal before any host or component is touched: error -> exit code, through the real CLIs.

The contract (docs/SPEC.md): the fleet exits 1 for an error before any host was contacted (a bad
inventory, a bad inventory variable, an empty match, a broken environment) and 5 for bad options;
the agent exits 6 for an invalid configuration and 2 for bad arguments. Each message is one
line on stderr, unwrapped however long, naming what to fix; stdout stays empty; no traceback.

The CLIs' main() run in this process (as Typer's CliRunner would, with the real argv handling and
error mapping, without an interpreter start per row); one row of each program also runs as a
real process, where stderr is a pipe.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from imageserving_fleet.agent.main import main as agent_main
from imageserving_fleet.fleet.main import main as fleet_main

LOCAL = "all:\n  hosts:\n    web1:\n      ansible_connection: local\n"


def _inventory_with(var: str) -> str:
    return f"all:\n  hosts:\n    web1:\n      {var}\n"


# (inventory text or None for the local one, argv after -i, exit code, what stderr must say)
FLEET_CASES: list[tuple[str, str | None, list[str], int, str]] = [
    # ---- inventory: exit 1
    ("missing file", "<missing>", ["status"], 1, "nope.yml"),
    ("YAML syntax", "all:\n  hosts:\n    a: [\n", ["status"], 1, "hosts.yml:"),
    ("not a mapping", "- a\n- b\n", ["status"], 1, "must be a mapping"),
    ("unknown group key", "all:\n  hostz:\n    a:\n", ["status"], 1, "unknown key 'hostz'"),
    ("ansible_port not a number", _inventory_with("ansible_port: notaport"), ["status"], 1,
     "host web1: ansible_port: expected a port number 1-65535, got 'notaport'"),
    ("ansible_port out of range", _inventory_with("ansible_port: 70000"), ["status"], 1, "ansible_port"),
    ("ansible_connection unsupported", _inventory_with("ansible_connection: docker"), ["status"], 1,
     "host web1: ansible_connection: 'docker' is not supported"),
    ("ansible_become not a boolean", _inventory_with("ansible_become: maybe"), ["status"], 1, "ansible_become"),
    ("ansible_user a list", _inventory_with("ansible_user: [a, b]"), ["status"], 1, "ansible_user"),
    ("templated ansible_host", _inventory_with("ansible_host: '{{ x }}.example.com'"), ["status"], 1,
     "templated values are not supported"),
    ("ssh args unbalanced", _inventory_with("ansible_ssh_common_args: \"-o 'ProxyJump=x\""), ["status"], 1,
     "ansible_ssh_common_args"),
    ("ssh args bad port", _inventory_with("ansible_ssh_common_args: -o Port=abc"), ["status"], 1,
     "ansible_ssh_common_args"),
    ("bad variable, deploy too", _inventory_with("ansible_port: notaport"), ["deploy"], 1, "ansible_port"),
    ("bad variable, report too", _inventory_with("ansible_port: notaport"), ["report", "-o", "r.html"], 1,
     "ansible_port"),
    ("limit matches nothing", None, ["status", "-l", "nomatch*"], 1, "matches no host"),
    ("limit malformed", None, ["status", "-l", "web[1"], 1, "web[1"),
    # ---- options: exit 5
    ("forks not a number", None, ["status", "--forks", "many"], 5, "--forks"),
    ("forks zero", None, ["status", "--forks", "0"], 5, "--forks must be at least 1"),
    ("timeout zero", None, ["status", "--timeout", "0"], 5, "--timeout must be"),
    ("connect timeout zero", None, ["status", "--connect-timeout", "0"], 5, "--connect-timeout must be"),
    ("host key policy", None, ["status", "--host-key-policy", "yolo"], 5, "--host-key-policy must be one of"),
    ("ssh config missing", None, ["status", "--ssh-config", "/nonexistent/ssh_config"], 5, "ssh-config"),
    ("private key missing", None, ["status", "--private-key", "/nonexistent/key"], 5, "private-key"),
    ("serial zero", None, ["restart", "--serial", "0"], 5, "--serial must be"),
    ("hostile component id", None, ["status", "is;reboot"], 5, "invalid component id"),
    ("unknown command", None, ["frobnicate"], 5, "frobnicate"),
    ("unknown option", None, ["status", "--frob"], 5, "--frob"),
    ("report format", None, ["report", "--format", "pdf"], 5, "pdf"),
    ("report slice", None, ["report", "--slice", "3/2"], 5, "3/2"),
    ("report merge nothing", None, ["report", "merge"], 5, "REPORT.json"),
    ("logs grep not a regex", None, ["logs", "is", "--grep", "err("], 5, "--grep: not a regular expression: 'err('"),
    ("logs since not a duration", None, ["logs", "is", "--since", "yesterday"], 5, "--since: expected a duration"),
    ("logs since zero", None, ["logs", "is", "--since", "0s"], 5, "--since: expected a duration"),
    ("logs bad file name", None, ["logs", "is:../etc", "--group"], 5, "invalid log name '../etc'"),
    ("exporter notify not http", None, ["exporter", "--notify", "ftp://hooks"], 5, "--notify: expected an http"),
    ("exporter notify interval", None, ["exporter", "--notify", "http://127.0.0.1:9/x", "--notify-interval", "often"],
     5, "--notify-interval: expected a duration"),
]


def _run_in_process(main: Callable[[list[str]], None], argv: list[str],
                    capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.mark.parametrize(("case", "inventory", "argv", "expected", "says"), FLEET_CASES,
                         ids=[c[0] for c in FLEET_CASES])
def test_fleet_error_exit_codes(case: str, inventory: str | None, argv: list[str], expected: int, says: str,
                                tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./inventory/hosts.yml of the developer's; report -o lands here
    monkeypatch.delenv("IMAGESERVING_INVENTORY", raising=False)
    path = tmp_path / "hosts.yml"
    if inventory == "<missing>":
        path = tmp_path / "nope.yml"
    else:
        path.write_text(inventory if inventory is not None else LOCAL)
    code, out, err = _run_in_process(fleet_main, ["-i", str(path), *argv], capsys)
    assert code == expected, (case, code, err)
    assert says in err, (case, err)
    assert "Traceback" not in err and "internal error" not in err
    if expected == 1:  # ours: one unwrapped line, prefixed; nothing on stdout
        assert out == "" and err.startswith("imageserving-fleet: ") and err.count("\n") == 1, err


AGENT_CASES: list[tuple[str, str | None, list[str], int, str]] = [
    # ---- configuration: exit 6
    ("YAML syntax", "components: [\n", ["config", "check"], 6, "agent.yaml"),
    ("unknown key", "components:\n  is:\n    command: [x]\n    colour: red\n", ["config", "check"], 6, "colour"),
    ("bad duration", "components:\n  is:\n    command: [x]\n    stop_timeout: soon\n", ["config", "check"], 6,
     "components.is.stop_timeout"),
    ("shell string", "components:\n  is:\n    command: \"touch /tmp/x; reboot\"\n", ["config", "check"], 6,
     "components.is.command"),
    ("bad id", "components:\n  \"is;reboot\":\n    command: [x]\n", ["config", "check"], 6, "is;reboot"),
    ("missing file", "<missing>", ["config", "check"], 6, "nope.yaml"),
    ("invalid config refuses start", "components: [\n", ["start"], 6, "agent.yaml"),
    # ---- arguments: exit 2
    ("hostile component id", None, ["status", "is;reboot"], 2, "valid ids"),
    ("unknown command", None, ["frobnicate"], 2, "frobnicate"),
    ("unknown option", None, ["status", "--frob"], 2, "--frob"),
]


@pytest.mark.parametrize(("case", "config", "argv", "expected", "says"), AGENT_CASES, ids=[c[0] for c in AGENT_CASES])
def test_agent_error_exit_codes(case: str, config: str | None, argv: list[str], expected: int, says: str,
                                tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("IMAGESERVING_")]:
        monkeypatch.delenv(name)
    args = ["--home", str(tmp_path / "home")]
    if config == "<missing>":
        args += ["--config", str(tmp_path / "nope.yaml")]
    elif config is not None:
        (tmp_path / "agent.yaml").write_text(config)
        args += ["--config", str(tmp_path / "agent.yaml")]
    code, out, err = _run_in_process(agent_main, [*args, *argv], capsys)
    assert code == expected, (case, code, err)
    assert says in err, (case, err)
    assert "Traceback" not in err
    if expected == 6:
        assert err.startswith("imageserving: invalid configuration: ") and err.count("\n") == 1, err
    assert not (tmp_path / "home" / "run" / "supervisor.pid").exists()  # nothing was started


def test_errors_are_one_unwrapped_line_when_stderr_is_a_pipe(tmp_path: Path) -> None:
    """A cron mail or a log must read the whole message on one line, however long (rich wraps at 80)."""
    long_host = "web-" + "x" * 90
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(f"all:\n  hosts:\n    {long_host}:\n      ansible_port: notaport\n")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "IMAGESERVING_INVENTORY")}
    proc = subprocess.run([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inventory), "status"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (f"imageserving-fleet: host {long_host}: ansible_port: expected a port number 1-65535, "
                           f"got 'notaport'\n")
    config = tmp_path / "agent.yaml"
    config.write_text("components:\n  " + "c" * 30 + ":\n    command: [x]\n    stop_timeout: " + "s" * 80 + "\n")
    proc = subprocess.run([sys.executable, "-m", "imageserving_fleet.agent.main", "--home", str(tmp_path / "h"),
                           "--config", str(config), "config", "check"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 6 and proc.stderr.count("\n") == 1 and "s" * 80 in proc.stderr, proc.stderr


def test_a_missing_controller_module_is_said_once_before_any_host(tmp_path: Path) -> None:
    """paramiko gone from the environment: one message with the fix and exit 1, not one "internal error" per host."""
    inventory = tmp_path / "hosts.yml"
    hosts = "".join(f"    h{i}:\n      ansible_host: 127.0.0.1\n      ansible_port: 9\n" for i in range(5))
    inventory.write_text("all:\n  hosts:\n" + hosts)
    code = ("import sys; sys.modules['paramiko'] = None; "  # what a removed package looks like to import
            "from imageserving_fleet.fleet.main import main; main(sys.argv[1:])")
    for extra in ([], ["--json"]):
        proc = subprocess.run([sys.executable, "-c", code, "-i", str(inventory), "status", *extra],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
        assert "Python module paramiko" in proc.stderr and "nothing was contacted" in proc.stderr
        assert f"Fix: {sys.executable} -m pip install 'paramiko" in proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    # rich, imported by the CLI itself: the same, from the entry point.
    code = code.replace("'paramiko'", "'rich'")
    proc = subprocess.run([sys.executable, "-c", code, "-i", str(inventory), "status"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1 and "Python module rich" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


SSH_HOST = "all:\n  hosts:\n    web1:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n"


@pytest.mark.parametrize(("ssh_config", "inventory", "says"), [
    ("Host *\n    Port abc\n", SSH_HOST.replace("      ansible_port: 1\n", ""), "ssh_config Port 'abc' is not a number"),
    ("Host *\n    ProxyJump bastion:notaport\n", SSH_HOST, "bad ProxyJump host 'bastion:notaport'"),
    ("", _inventory_with("ansible_host: 127.0.0.1\n      ansible_ssh_common_args: -o ProxyJump=b:0"),
     "bad ProxyJump host 'b:0'"),
], ids=["bad Port", "broken ProxyJump in ssh_config", "broken ProxyJump in ansible_ssh_common_args"])
def test_ssh_config_errors_exit_1_before_any_host(ssh_config: str, inventory: str, says: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad configuration found before any host is contacted: exit 1 (not 5, not a host's failure)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hosts.yml").write_text(inventory)
    (tmp_path / "ssh_config").write_text(ssh_config)
    code, out, err = _run_in_process(fleet_main, ["-i", "hosts.yml", "--ssh-config", "ssh_config", "status"], capsys)
    assert code == 1 and says in err and out == "" and "Traceback" not in err, (code, err)
