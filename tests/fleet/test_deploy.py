"""imageserving-fleet deploy: end to end on the loopback sshd (real venvs, real pip), and its pure parts.

The wheelhouse is built once per test session (a session cache directory); the deployed lab is
built once per module: two logical hosts (two installs at once, each its own), each with its own
imageserving_home and venv path and no imageserving_command, so start and status find the
deployed agent by the default.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.fleet.deploy import install
from imageserving_fleet.fleet.deploy.facts import HostFacts, parse_facts
from imageserving_fleet.fleet.deploy.plan import (
    Action,
    DeployRequest,
    Refused,
    WheelSet,
    plan_host,
    python_too_old,
    render_unit,
)
from imageserving_fleet.fleet.deploy.run import interpreters
from imageserving_fleet.fleet.deploy.wheelhouse import CACHE_ENV, Platform, project_wheel
from imageserving_fleet.fleet.target import FleetOptions, make_target
from tests.sshd import SshServer

from .fleetlab import Lab, by_host, pids
from .test_become import sudo_user  # noqa: F401  (the fixture: a password user with sudo)
from .test_transfer import WELCOME, nosftp_sshd, printing_user  # noqa: F401  (fixtures)

HOSTS = ("d1", "d2")


class DeployLab(Lab):
    """The fleet lab, with every deploy given this session's wheel."""

    def __init__(self, sshd: SshServer, directory: Path, wheel: str) -> None:
        super().__init__(sshd, directory)
        self.wheel = wheel

    def fleet(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        if "deploy" in args and "--wheel" not in args:
            args = (*args, "--wheel", self.wheel)
        return super().fleet(*args, **kw)


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One wheelhouse for the whole session: the first deploy fills it, the others reuse it."""
    return tmp_path_factory.mktemp("deploy-cache")


@pytest.fixture(scope="session")
def wheel(wheel_cache: Path) -> str:
    """This tree's wheel, built once: every deploy here gets --wheel, so an edit to the tree during
    the session (a shared checkout) cannot turn the second deploy into an upgrade."""
    return str(project_wheel(wheel_cache).wheel.path)


def _venv(lab: Lab, name: str) -> Path:
    return lab.dir / name / "opt" / "venv"


@pytest.fixture(scope="module")
def deployed(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory, wheel_cache: Path, wheel: str
             ) -> Iterator[tuple[Lab, int, dict[str, Any], float]]:
    """A lab of fresh hosts after one deploy: (lab, exit code, JSON document, seconds it took)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(wheel_cache))
        lab = DeployLab(sshd, tmp_path_factory.mktemp("deploy"), wheel)
        for name in HOSTS:
            lab.add_host(name, imageserving_command=None, imageserving_venv=str(_venv(lab, name)))
        started = time.monotonic()
        code, doc = lab.fleet_json("deploy", timeout=600)
        elapsed = time.monotonic() - started
        try:
            yield lab, code, doc, elapsed
        finally:
            lab.stop_all()


def _version_dirs(lab: Lab, name: str) -> list[str]:
    return sorted(os.listdir(_venv(lab, name).parent / "venvs"))


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_first_deploy_installs_then_start_and_status_use_the_deployed_agent(
        deployed: tuple[Lab, int, dict[str, Any], float]) -> None:
    lab, code, doc, elapsed = deployed
    assert code == 0, doc
    assert doc["command"] == "deploy" and doc["summary"]["ok"] == len(HOSTS)
    for name, entry in by_host(doc).items():
        venv = _venv(lab, name)
        assert entry["action"] == "installed" and entry["version"] == "0.1.0"
        assert entry["imageserving_command"] == f"{venv}/bin/imageserving"
        assert venv.is_symlink() and Path(os.readlink(venv)).parent == venv.parent / "venvs"
        site = next((venv / "lib").glob("python3*/site-packages"))
        installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
        assert {"imageserving_fleet", "prometheus_client", "psutil", "pyyaml", "typer"} <= installed
        # The controller's own dependencies stay on the controller (rich comes to hosts through typer).
        assert not installed & {"paramiko", "fabric", "jinja2", "markupsafe", "cryptography", "bcrypt", "pynacl"}

    code, started = lab.fleet_json("start")
    assert code == 0, started
    code, status = lab.fleet_json("status")
    assert code == 0, status
    for name, entry in by_host(status).items():
        assert entry["status"]["agent_version"] == "0.1.0"
        # The supervisor runs from the deployed environment, not from this source tree.
        assert str(_venv(lab, name).parent / "venvs") in _cmdline(entry["status"]["supervisor"]["pid"])


def test_second_deploy_changes_nothing(deployed: tuple[Lab, int, dict[str, Any], float]) -> None:
    lab, _, _, first = deployed
    assert lab.fleet_json("start")[0] == 0  # idempotent; the test may run alone
    before = {n: (os.readlink(_venv(lab, n)), _version_dirs(lab, n)) for n in HOSTS}
    running = {h: pids(e) for h, e in by_host(lab.fleet_json("status")[1]).items()}

    started = time.monotonic()
    code, doc = lab.fleet_json("deploy")
    elapsed = time.monotonic() - started
    assert code == 0, doc
    assert {h["action"] for h in doc["hosts"]} == {"unchanged"}
    assert {h["uploaded"] for h in doc["hosts"]} == {0}
    assert elapsed < first  # nothing to install: faster than the first, however slow the machine
    assert {n: (os.readlink(_venv(lab, n)), _version_dirs(lab, n)) for n in HOSTS} == before
    assert {h: pids(e) for h, e in by_host(lab.fleet_json("status")[1]).items()} == running

    table = lab.fleet("deploy")
    assert table.returncode == 0, table.stderr
    assert "unchanged" in table.stdout and f"hosts={len(HOSTS)} ok={len(HOSTS)}" in table.stdout
    assert f"{_venv(lab, 'd1')}/bin/imageserving" in table.stdout and "imageserving_command" in table.stdout


def test_failed_upgrade_leaves_the_earlier_agent_running(deployed: tuple[Lab, int, dict[str, Any], float]) -> None:
    lab = deployed[0]
    assert lab.fleet_json("start", "-l", "d1")[0] == 0
    before = pids(by_host(lab.fleet_json("status", "-l", "d1")[1])["d1"])
    link, dirs = os.readlink(_venv(lab, "d1")), _version_dirs(lab, "d1")
    # The host's python3 works, but creating an environment fails as on a full disk.
    broken = lab.dir / "python-disk-full"
    broken.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = venv ] && '
                      '{ echo "OSError: [Errno 28] No space left on device" >&2; exit 1; }; done\nexec python3 "$@"\n')
    broken.chmod(0o755)
    lab.hosts["d1"]["ansible_python_interpreter"] = str(broken)
    try:
        code, doc = lab.fleet_json("deploy", "--force", "-l", "d1")
    finally:
        del lab.hosts["d1"]["ansible_python_interpreter"]
    entry = by_host(doc)["d1"]
    assert code == 2 and entry["result"] == "failed", doc
    assert "create venv" in entry["reason"] and "No space left on device" in entry["reason"]
    assert "unchanged" in entry["reason"]
    assert os.readlink(_venv(lab, "d1")) == link and _version_dirs(lab, "d1") == dirs  # nothing left behind
    code, status = lab.fleet_json("status", "-l", "d1")
    assert code == 0 and pids(by_host(status)["d1"]) == before


def _bumped(wheel: str, version: str, out: Path) -> str:
    """The same wheel rebuilt as another version (its __version__, METADATA and RECORD): a new agent build."""
    import base64
    import hashlib
    import re
    import zipfile

    src = zipfile.ZipFile(wheel)
    old = re.match(r"imageserving_fleet-([^-]+)-", Path(wheel).name)
    assert old
    files: dict[str, bytes] = {}
    for name in src.namelist():
        data = src.read(name)
        if name == "imageserving_fleet/__init__.py" or name.endswith(".dist-info/METADATA"):
            data = data.replace(old.group(1).encode(), version.encode(), 1)
        files[name.replace(f"-{old.group(1)}.dist-info", f"-{version}.dist-info")] = data
    record = next(n for n in files if n.endswith(".dist-info/RECORD"))
    lines = []
    for name, data in files.items():
        if name != record:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(f"{name},sha256={digest},{len(data)}")
    files[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    path = out / Path(wheel).name.replace(f"-{old.group(1)}-", f"-{version}-")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data in files.items():
            whl.writestr(name, data)
    return str(path)


def test_a_new_agent_version_is_activated_and_no_component_restarts(
        deployed: tuple[Lab, int, dict[str, Any], float], tmp_path: Path) -> None:
    """SPEC §2/§3: deploy ends with `restart supervisor` where the build changed: the new code runs,
    every component keeps its pid and its restart count."""
    lab = deployed[0]
    assert lab.fleet_json("start", "-l", "d2")[0] == 0
    before = by_host(lab.fleet_json("status", "-l", "d2")[1])["d2"]["status"]
    assert before["agent_version"] == "0.1.0"
    newer = _bumped(lab.wheel, "0.1.1", tmp_path)  # type: ignore[attr-defined]
    code, doc = lab.fleet_json("deploy", "-l", "d2", "--wheel", newer, timeout=600)
    entry = by_host(doc)["d2"]
    assert code == 0 and entry["action"] == "installed" and entry["activated"] == "restarted", doc
    after = by_host(lab.fleet_json("status", "-l", "d2")[1])["d2"]["status"]
    assert after["agent_version"] == "0.1.1"
    assert after["supervisor"]["pid"] == entry["supervisor_pid"] != before["supervisor"]["pid"]
    assert {c["id"]: (c["pid"], c["restarts"]) for c in after["components"]} == \
        {c["id"]: (c["pid"], c["restarts"]) for c in before["components"]}


def test_a_venv_under_a_regular_file_fails_with_the_reason(deployed: tuple[Lab, int, dict[str, Any], float]) -> None:
    lab = deployed[0]
    blocker = lab.dir / "not-a-directory"
    blocker.write_text("a file where a directory should be\n")
    lab.add_host("d4", imageserving_command=None, imageserving_venv=str(blocker / "venv"))
    try:
        code, doc = lab.fleet_json("deploy", "-l", "d4")
    finally:
        del lab.hosts["d4"]
    entry = by_host(doc)["d4"]
    assert code == 2 and entry["result"] == "failed"
    assert "create venv" in entry["reason"] and "Not a directory" in entry["reason"], entry


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs here")
def test_systemd_where_there_is_none_is_a_clear_per_host_error(deployed: tuple[Lab, int, dict[str, Any], float]) -> None:
    lab = deployed[0]
    link = os.readlink(_venv(lab, "d2"))
    code, doc = lab.fleet_json("deploy", "--systemd", "-l", "d2")
    entry = by_host(doc)["d2"]
    assert code == 2 and entry["result"] == "failed"
    assert "systemd is not running on this host" in entry["reason"]
    assert os.readlink(_venv(lab, "d2")) == link


def test_become_installs_as_root_and_the_fleet_finds_that_agent(
        sshd: SshServer, sudo_user: tuple[str, str], wheel: str, wheel_cache: Path, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    user, password = sudo_user
    monkeypatch.setenv(CACHE_ENV, str(wheel_cache))
    monkeypatch.setenv("IMAGESERVING_BECOME_PASS", password)
    lab = DeployLab(sshd, tmp_path, wheel)
    venv = _venv(lab, "b1")
    # The login user uploads to its own home; root installs (sudo's PATH has no pyenv: name the python).
    lab.add_host("b1", ansible_user=user, ansible_become=True, imageserving_command=None, imageserving_venv=str(venv),
                 imageserving_python=sys.executable)
    try:
        code, doc = lab.fleet_json("deploy")
        assert code == 0, doc
        assert by_host(doc)["b1"]["action"] == "installed" and password not in str(doc)
        assert os.lstat(venv).st_uid == 0 and os.stat(venv).st_uid == 0
        assert lab.fleet_json("deploy")[1]["hosts"][0]["action"] == "unchanged"
        assert lab.fleet_json("start")[0] == 0
        code, doc = lab.fleet_json("status")
        supervisor = by_host(doc)["b1"]["status"]["supervisor"]["pid"]
        assert code == 0 and os.stat(f"/proc/{supervisor}").st_uid == 0
        assert str(venv.parent / "venvs") in _cmdline(supervisor)
    finally:
        lab.stop_all()


def test_deploy_without_sftp_through_a_login_shell_that_prints(
        nosftp_sshd: SshServer, printing_user: str, wheel: str, wheel_cache: Path, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One host, both troubles: no SFTP subsystem, and a ~/.bashrc that prints before every command.

    (That such a shell breaks SFTP where there is one is test_transfer's: a full deploy costs.)"""
    monkeypatch.setenv(CACHE_ENV, str(wheel_cache))
    lab = DeployLab(nosftp_sshd, tmp_path, wheel)
    lab.add_host("p1", ansible_user=printing_user, imageserving_command=None, imageserving_python="/usr/bin/python3")
    # Its imageserving_home lies in root's pytest directory, out of this user's reach: no supervisor
    # can run there, and `restart supervisor` would rightly say permission denied (degraded).
    code, doc = lab.fleet_json("deploy", "--no-activate", timeout=600)
    entry = by_host(doc)["p1"]
    assert code == 0 and entry["action"] == "installed", doc
    assert entry["transfer"] == "piped" and "Channel closed" in entry["sftp_error"]
    venv = Path(os.path.expanduser(f"~{printing_user}")) / ".imageserving" / "venv"
    assert entry["imageserving_command"] == f"{venv}/bin/imageserving"
    assert os.lstat(venv).st_uid != 0  # installed as that user
    done = subprocess.run([str(venv / "bin" / "imageserving"), "--version"], capture_output=True, text=True)
    assert done.stdout.strip() == "imageserving 0.1.0"
    code, doc = lab.fleet_json("deploy", "--no-activate")  # the probe reads past the welcome line
    again = doc["hosts"][0]
    assert code == 0 and again["action"] == "unchanged" and again["transfer"] is None, doc
    assert WELCOME not in str(doc)


# ------------------------------------------------------------------ pure parts
def _facts(**kw: Any) -> HostFacts:
    base: dict[str, Any] = dict(python=(3, 11, 7), implementation="cpython", platform="linux-x86_64",
                                libc="glibc 2.36", uid=1000, venv="/h/.imageserving/venv", venv_kind="missing",
                                venv_target=None, current=None, agent=None, agent_error="",
                                versions_dir="/h/.imageserving/venvs")
    base.update(kw)
    return HostFacts(**base)


OFFER = WheelSet("0.1.0", "0123456789ab", {"a.whl": "1", "b.whl": "2"}, ">=3.11")
CURRENT = "0.1.0-0123456789ab"


@pytest.mark.parametrize(("facts", "request_", "action", "dir_name", "uploads", "prune"), [
    # clean host: everything uploaded, installed into <version>-<build id>
    (_facts(), DeployRequest(), Action.INSTALL, CURRENT, ("a.whl", "b.whl"), ()),
    # a wheel already there with the same hash is not sent again; another hash is
    (_facts(staged={"1/a.whl": "1", "old/b.whl": "old"}), DeployRequest(), Action.INSTALL, CURRENT, ("b.whl",), ()),
    # keyed by content: the same name under another hash's key is another build's wheel
    (_facts(staged={"9/a.whl": "9", "2/b.whl": "2"}), DeployRequest(), Action.INSTALL, CURRENT, ("a.whl",), ()),
    # same build, agent answers: nothing to do
    (_facts(venv_kind="link", current=CURRENT, agent="imageserving 0.1.0", versions=(CURRENT,)),
     DeployRequest(), Action.UNCHANGED, CURRENT, (), ()),
    # same build but the agent does not run: reinstalled beside it, the link moves on
    (_facts(venv_kind="link", current=CURRENT, agent=None, versions=(CURRENT,)),
     DeployRequest(), Action.INSTALL, CURRENT + ".2", ("a.whl", "b.whl"), ()),
    # --force reinstalls a working agent, never over the directory in use
    (_facts(venv_kind="link", current=CURRENT, agent="imageserving 0.1.0", versions=(CURRENT, CURRENT + ".2")),
     DeployRequest(force=True), Action.INSTALL, CURRENT + ".3", ("a.whl", "b.whl"),
     ("/h/.imageserving/venvs/0.1.0-0123456789ab.2",)),
    # an upgrade keeps the previous version and any a process runs from; older ones go
    (_facts(venv_kind="link", current="0.0.9-aaaaaaaaaaaa", agent="imageserving 0.0.9",
            versions=("0.0.7-cccccccccccc", "0.0.8-bbbbbbbbbbbb", "0.0.9-aaaaaaaaaaaa", "notes"),
            in_use=("0.0.8-bbbbbbbbbbbb",)),
     DeployRequest(), Action.INSTALL, CURRENT, ("a.whl", "b.whl"), ("/h/.imageserving/venvs/0.0.7-cccccccccccc",)),
])
def test_plan(facts: HostFacts, request_: DeployRequest, action: Action, dir_name: str,
              uploads: tuple[str, ...], prune: tuple[str, ...]) -> None:
    plan = plan_host(facts, OFFER, request_)
    assert plan.action == action
    assert plan.version_dir == f"/h/.imageserving/venvs/{dir_name}"
    assert plan.uploads == uploads and plan.prune == prune
    assert plan.agent == "/h/.imageserving/venv/bin/imageserving"


@pytest.mark.parametrize(("facts", "request_", "words"), [
    (_facts(python=(3, 9, 2)), DeployRequest(), "python3 on the host is 3.9.2"),
    (_facts(venv_kind="dir"), DeployRequest(), "is a directory, not the symlink"),
    (_facts(systemd=False), DeployRequest(systemd=True), "systemd is not running on this host"),
    (_facts(systemd=True, uid=1000), DeployRequest(systemd=True), "needs root"),
])
def test_plan_refuses(facts: HostFacts, request_: DeployRequest, words: str) -> None:
    with pytest.raises(Refused, match=words):
        plan_host(facts, OFFER, request_)


@pytest.mark.parametrize(("python", "requires", "ok"), [
    ((3, 11, 0), ">=3.11", True), ((3, 10, 12), ">=3.11", False), ((3, 13, 1), ">=3.11,<4", True),
    ((3, 12, 0), None, True), ((3, 11, 2), "~=3.11", True),  # unknown operators are left to pip
])
def test_python_too_old(python: tuple[int, int, int], requires: str | None, ok: bool) -> None:
    assert (python_too_old(python, requires) is None) == ok


def test_platform_tags_cover_every_older_manylinux_and_the_legacy_names() -> None:
    p = Platform.from_facts([3, 11, 7], "cpython", "linux-x86_64", "glibc", "2.36")
    assert p.key == "cp311-manylinux_2_36_x86_64"
    tags = p.platform_tags()
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags and "manylinux_2_5_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    args = p.pip_download_args()
    assert args[:8] == ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                        "--platform"]
    arm = Platform.from_facts([3, 12, 1], "cpython", "linux-aarch64", "glibc", "2.31").platform_tags()
    assert arm[-1] == "manylinux2014_aarch64" and "manylinux_2_17_aarch64" in arm and "manylinux1_aarch64" not in arm
    assert Platform.from_facts([3, 12, 1], "cpython", "linux-x86_64", "musl", "").platform_tags() == [
        "musllinux_1_1_x86_64"]
    with pytest.raises(ValueError, match="CPython"):
        Platform.from_facts([3, 10, 0], "pypy", "linux-x86_64", "glibc", "2.36")


def test_interpreters_from_the_inventory() -> None:
    assert interpreters([("a", {}), ("b", {"ansible_python_interpreter": "/usr/bin/python3.11"}),
                         ("c", {"ansible_python_interpreter": "auto_silent"}),
                         ("d", {"imageserving_python": "/opt/py/bin/python3", "ansible_python_interpreter": "x"})]) == {
        "b": "/usr/bin/python3.11", "d": "/opt/py/bin/python3"}


def test_unit_points_at_the_deployed_agent_and_refuses_odd_paths() -> None:
    template = "[Service]\nExecStart=/usr/local/bin/imageserving supervise\nEnvironment=IMAGESERVING_HOME=/var/lib/x\n"
    unit = render_unit(template, "/opt/is/venv/bin/imageserving", "/srv/is", None)
    assert "ExecStart=/opt/is/venv/bin/imageserving supervise" in unit and "IMAGESERVING_HOME=/srv/is" in unit
    with pytest.raises(Refused, match="plain characters"):
        render_unit(template, "/opt/my venv/bin/imageserving", None, None)


def test_parse_facts_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="no JSON"):
        parse_facts(b"Welcome to host!\n")
    with pytest.raises(ValueError, match="lacks"):
        parse_facts(b'{"python": [3, 11, 0]}\n')


def test_hostile_values_reach_the_remote_command_verbatim(tmp_path: Path) -> None:
    """Every value is an argument of a constant script: quotes, $() and ; stay data."""
    hostile = str(tmp_path / "it's $(touch pwned); rm -rf x `id`")
    target = make_target("h", {"imageserving_venv": hostile}, FleetOptions())
    script = 'printf "%s\\n" "$@"'
    command = install.shell(target, script, [hostile, "plain"], stage_arg=True)
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "HOME": str(tmp_path)}, check=True).stdout.splitlines()
    assert out == [f"{tmp_path}/{install.STAGE}", hostile, "plain"]
    assert not (tmp_path / "pwned").exists()
    become = make_target("h", {"ansible_become": True, "ansible_become_user": "scene7"}, FleetOptions())
    wrapped = install.shell(become, script, ["x"])
    assert "sudo -n -u scene7 -- sh -c " in wrapped and shlex.quote(script) in wrapped
    assert "sudo" not in install.shell(become, script, ["x"], sudo=False)


def test_a_wheel_that_is_not_ours_is_refused_before_any_host(deployed: tuple[Lab, int, dict[str, Any], float],
                                                              tmp_path: Path) -> None:
    lab = deployed[0]
    bogus = tmp_path / "requests-2.0-py3-none-any.whl"
    bogus.write_bytes(b"not a zip")
    proc = Lab.fleet(lab, "deploy", "--wheel", str(bogus))
    assert proc.returncode == 1 and "--wheel" in proc.stderr and "not an existing" in proc.stderr


def test_the_table_says_how_files_went() -> None:
    from rich.console import Console

    from imageserving_fleet.fleet.render import print_deploy
    from imageserving_fleet.fleet.results import Deployed, HostResult, Result

    console = Console(record=True, width=200)
    print_deploy(console, [HostResult("h1", Result.OK, deployed=Deployed("installed", "1", "/a", "/v", 2, "piped")),
                           HostResult("h2", Result.OK, deployed=Deployed("unchanged", "1", "/a", "/v", 0, None))])
    text = console.export_text()
    assert "transfer" in text and "piped" in text


@pytest.mark.parametrize(("stdout", "answer"), [
    (f"{install.CHECK_MARK}\nimageserving 0.1.0\n".encode(), "imageserving 0.1.0"),
    (f"Welcome!\n{install.CHECK_MARK}\nimageserving 0.1.0\n".encode(), "imageserving 0.1.0"),
    (b"imageserving 0.1.0\n", "imageserving 0.1.0"),  # no marker: the whole output
    (f"{install.CHECK_MARK}\n{install.CHECK_MARK}\nx\n".encode(), "x"),
])
def test_the_version_check_reads_past_a_login_shell(stdout: bytes, answer: str) -> None:
    assert install.after_mark(stdout, install.CHECK_MARK) == answer


def test_parse_facts_reads_past_a_login_shell() -> None:
    doc = (b'Welcome!\n{"python": [3, 11, 2], "implementation": "cpython", "platform": "linux-x86_64", "uid": 0, '
           b'"venv": "/v", "venv_kind": "missing", "versions_dir": "/vs"}\n{not json\nbye\n')
    assert parse_facts(doc).python == (3, 11, 2)
