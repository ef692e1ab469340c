"""Packaging: a plain `pip install .` gives a working controller; the hosts get only the agent's wheels.

The install test does what a newcomer does, in a fresh virtual environment built from a copy of
this tree (pip as configured on the machine: its cache, its index), then runs the installed
`imageserving-fleet` against real loopback sshd hosts. Deploy's own proof that paramiko, jinja2
and rich stay on the controller is in tests/fleet/test_deploy.py
(test_first_deploy_installs_then_start_and_status_use_the_deployed_agent).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from imageserving_fleet.fleet.deploy.wheelhouse import agent_requirements
from imageserving_fleet.fleet.requirements import CONTROLLER_MODULES
from tests.sshd import SshServer

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# import name -> distribution, where they differ
DISTRIBUTIONS = {"yaml": "pyyaml", "jinja2": "jinja2", "prometheus_client": "prometheus-client"}


def _names(requirements: list[str]) -> set[str]:
    out = set()
    for spec in requirements:
        name = spec.split(";")[0].split("[")[0]
        for stop in "<>=!~ ":
            name = name.split(stop)[0]
        out.add(name.lower())
    return out


def _guarded(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside a `try` that catches ImportError: a fallback, not a dependency
    (names.py's `_sha2`, the name Python 3.12 gives 3.11's `_sha256`)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(isinstance(h.type, ast.Name) and h.type.id == "ImportError"
                                             for h in node.handlers):
            ids |= {id(n) for part in (node.body, *(h.body for h in node.handlers)) for stmt in part
                    for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom)}
    return ids


def _third_party_imports_of(path: Path) -> set[str]:
    found = set()
    tree = ast.parse(path.read_text(), str(path))
    guarded = _guarded(tree)
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "imageserving_fleet"}


def _third_party_imports(package: Path) -> set[str]:
    return set().union(*(_third_party_imports_of(p) for p in package.rglob("*.py")))


def test_every_module_the_package_imports_is_a_default_dependency() -> None:
    declared = _names(PYPROJECT["project"]["dependencies"])
    # --cluster's dask is the one optional import (the `cluster` extra), and only under fleet/cluster/.
    optional = {"dask", "distributed"}
    assert "distributed" in _names(PYPROJECT["project"]["optional-dependencies"]["cluster"])
    outside_cluster = {p for p in (ROOT / "imageserving_fleet").rglob("*.py") if "cluster" not in p.parts}
    assert not any(_third_party_imports_of(p) & optional for p in outside_cluster)
    imported = _third_party_imports(ROOT / "imageserving_fleet")
    assert {"paramiko", "jinja2", "rich"} <= imported  # what the controller imports itself
    assert {DISTRIBUTIONS.get(m, m) for m in imported - optional} <= declared
    assert set(CONTROLLER_MODULES) <= imported  # the run-time check names modules the package really imports


def test_agent_extra_is_the_agents_share_and_fabric_is_a_bench_peer() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    agent = _names(extras["agent"])
    assert agent == {"prometheus-client", "psutil", "pyyaml", "typer"}
    assert agent <= _names(PYPROJECT["project"]["dependencies"])  # a plain install has the agent too
    assert not agent & {"paramiko", "jinja2", "rich", "fabric"}
    assert "fabric" in _names(extras["bench"]) and "fabric" not in _names(PYPROJECT["project"]["dependencies"])
    assert extras["fleet"] == []  # kept for `pip install '.[fleet]'` of older instructions


@pytest.mark.parametrize(("requires_dist", "expected"), [
    (["psutil>=5.9", "paramiko>=3.4", 'psutil>=5.9; extra == "agent"', 'typer>=0.12; extra == "agent"',
      'pytest>=8; extra == "test"'], ("psutil>=5.9", "typer>=0.12")),
    # A wheel built before the agent extra existed: its plain requirements, never an extra's.
    (["psutil>=5.9", "typer>=0.12", 'fabric>=3.2; extra == "fleet"'], ("psutil>=5.9", "typer>=0.12")),
    (["pyyaml>=6.0 ; extra == 'agent'", "rich>=13"], ("pyyaml>=6.0",)),
    ([], ()),
])
def test_agent_requirements_from_wheel_metadata(requires_dist: list[str], expected: tuple[str, ...]) -> None:
    assert agent_requirements(requires_dist) == expected


# ------------------------------------------------------------------ a newcomer's install


def _pip(venv: Path) -> list[str]:
    """This environment's pip, acting on `venv`."""
    return [sys.executable, "-m", "pip", "--python", str(venv / "bin/python")]


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`python3 -m venv v && v/bin/pip install .` from a copy of this tree (no build/ left in it).

    The venv is made without its own pip and this environment's pip installs into it (`pip
    --python`): the same resolution of the same requirements, without ensurepip's 3.5 s of CPU."""
    work = tmp_path_factory.mktemp("newcomer")
    work.chmod(0o755)
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
        ".hypothesis"))
    python3 = shutil.which("python3") or sys.executable
    subprocess.run([python3, "-m", "venv", "--without-pip", "v"], cwd=work, check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([*_pip(work / "v"), "install", "-q", "."], cwd=source, capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield work / "v"


def test_a_plain_install_runs_the_fleet_against_ssh_hosts(fresh_install: Path, sshd: SshServer,
                                                           tmp_path: Path) -> None:
    venv = fresh_install
    tmp_path.chmod(0o755)
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"components": {"is": {
        "command": [str(venv / "bin/python"), "-c", "import time; time.sleep(3600)"], "start_delay": "100ms"}}}))
    hosts = {f"web{i}": {**sshd.inventory_vars(), "imageserving_command": str(venv / "bin/imageserving"),
                         "imageserving_home": str(tmp_path / f"home{i}"), "imageserving_config": str(config)}
             for i in (1, 2)}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SSH_AUTH_SOCK", "VIRTUAL_ENV")}
    fleet = [str(venv / "bin/imageserving-fleet"), "-i", str(inventory), "--ssh-config", str(sshd.ssh_config_path)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*fleet, *args], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)

    try:
        assert run("start").returncode == 0
        proc = run("status")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert "hosts=2 ok=2" in proc.stdout and "internal error" not in proc.stdout + proc.stderr
        doc = json.loads(run("status", "--json").stdout)
        assert [(h["host"], h["result"]) for h in doc["hosts"]] == [("web1", "ok"), ("web2", "ok")]
        # The installed controller, not this tree: its package lives in the fresh venv.
        where = subprocess.run([str(venv / "bin/python"), "-c", "import imageserving_fleet; print(imageserving_fleet.__file__)"],
                               capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout
        assert where.startswith(str(venv))

        # A broken environment: paramiko removed. Said once, with the fix, before any host; exit 1.
        subprocess.run([*_pip(venv), "uninstall", "-q", "-y", "paramiko"], check=True, capture_output=True,
                       timeout=300, env=env)
        proc = run("status")
        assert proc.returncode == 1 and proc.stdout == "", (proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Python module paramiko" in proc.stderr, proc.stderr
        assert f"{venv}/bin/python" in proc.stderr and "-m pip install 'paramiko" in proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    finally:
        for home in (tmp_path / "home1", tmp_path / "home2"):
            if (home / "run").exists():
                subprocess.run([str(venv / "bin/imageserving"), "--home", str(home), "stop"], capture_output=True,
                               timeout=120, env=env)
