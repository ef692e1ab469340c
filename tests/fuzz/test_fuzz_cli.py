"""Hostile input through the real command lines: documented exit codes, never a traceback.

A few cases per program run as real subprocesses (each costs an interpreter start, ~0.5 s of CPU):
those where the process itself is the proof (a C-level crash such as LibYAML's SIGSEGV on deep
nesting, `start` refusing before it daemonizes, unbounded reads). The rest call the same entry
point in-process, `main(argv)` with the same argv: the exit code is SystemExit's, an escaping
exception is the traceback a user would see, and stdout/stderr are captured. The parsers behind
them are fuzzed in-process by the other files of this directory.
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

from .strategies import nested


def agent(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGESERVING_")}
    return subprocess.run([sys.executable, "-m", "imageserving_fleet.agent.main", "--home", str(tmp_path / "h"), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def fleet(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGESERVING_")}
    return subprocess.run([sys.executable, "-m", "imageserving_fleet.fleet.main", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def in_process(capsys: pytest.CaptureFixture[str], main: Callable[[list[str]], None], *args: str
               ) -> subprocess.CompletedProcess[str]:
    """`main(argv)` in this process, as the console script calls it: its exit code and output."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("IMAGESERVING_")]:
            mp.delenv(key)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main(list(args))
    out, err = capsys.readouterr()
    code = exit_.value.code
    return subprocess.CompletedProcess(list(args), 0 if code is None else code, out, err)  # type: ignore[arg-type]


def clean(proc: subprocess.CompletedProcess[str], code: int) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    assert proc.returncode == code, (proc.returncode, proc.stdout[-500:], proc.stderr[-500:])


CONFIGS = {
    "garbage": b"\x00\x01\x02 not yaml: [",
    "laughs": b"a: &a [x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\n"
              b"components: {is: {command: [x], env: {C: [*c,*c,*c,*c,*c,*c,*c,*c]}}}\n",
    "python-tag": b"components: !!python/object/apply:os.system ['true']\n",
    "shell-string": b"components: {is: {command: 'touch /tmp/x; reboot'}}\n",
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_agent_config_check_refuses_with_exit_6(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.yaml"
    path.write_bytes(CONFIGS[name])
    if name == "garbage":   # one real interpreter for the path; the others in-process, same argv
        clean(agent(tmp_path, "config", "check", str(path)), 6)
    else:
        clean(in_process(capsys, agent_main, "--home", str(tmp_path / "h"), "config", "check", str(path)), 6)
    if name == "laughs":
        clean(agent(tmp_path, "--config", str(path), "start"), 6)  # refused before anything starts
        assert not (tmp_path / "h" / "run" / "supervisor.pid").exists()


@pytest.mark.parametrize("depth", [3000, 100_000])
def test_agent_config_check_deep_nesting(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("components:\n  is:\n    command: [x]\n    env: " + nested(depth))
    clean(agent(tmp_path, "config", "check", str(path)), 6)


def test_agent_config_that_never_ends_exit_6(tmp_path: Path) -> None:
    clean(agent(tmp_path, "config", "check", "/dev/zero"), 6)  # read up to 4 MiB, then refused


@pytest.mark.parametrize("args, code", [
    (["restart", "$(reboot)"], 2), (["logs", "../../etc/passwd"], 2),
])
def test_agent_bad_arguments_exit_2(tmp_path: Path, args: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    clean(in_process(capsys, agent_main, "--home", str(tmp_path / "h"), *args), code)


INVENTORIES = {
    "deep.yml": nested(100_000),                      # used to SIGSEGV in LibYAML
    "junk.ini": "[web\nhost ansible_port=notaport\n",
    "range.ini": "h[0:99999999]\n",
    "vault.yml": "all:\n  vars:\n    x: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n",
}


@pytest.mark.parametrize("name", list(INVENTORIES))
def test_fleet_bad_inventory_exit_1(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_text(INVENTORIES[name])
    if name == "deep.yml":  # a crash in C (LibYAML's SIGSEGV) only shows in a real process
        clean(fleet("-i", str(path), "hosts"), 1)
    else:
        clean(in_process(capsys, fleet_main, "-i", str(path), "hosts"), 1)


def test_fleet_inventory_that_never_ends_exit_1() -> None:
    clean(fleet("-i", "/dev/zero", "hosts"), 1)


@pytest.mark.parametrize("args, code", [
    (["-l", "~("], 1), (["-l", "localhost[9]"], 1),
    (["--forks", "0"], 5), (["--timeout", "nan"], 5), (["--timeout", "inf"], 5),
    (["--host-key-policy", "yolo"], 5),
    (["restart", "--serial", "0%"], 5), (["restart", "--max-fail-percentage", "nan"], 5),
])
def test_fleet_bad_options(tmp_path: Path, args: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text(f"all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   f"      imageserving_command: {tmp_path / 'none'}\n")
    if not any(a in args for a in ("status", "restart")):
        args = [*args, "ping"]
    clean(in_process(capsys, fleet_main, "-i", str(inv), *args), code)
