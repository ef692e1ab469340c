"""`deploy` (commands/deploy.py): what is planned from the run context before any host is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageserving_fleet.errors import InventoryError, UsageError
from imageserving_fleet.fleet.commands import deploy
from imageserving_fleet.fleet.context import Command
from imageserving_fleet.fleet.deploy.wheelhouse import WheelhouseError
from imageserving_fleet.fleet.results import Deployed, HostResult, Result

from .fakehosts import FakeHosts


def test_a_wheel_that_is_not_ours_stops_the_run_before_any_host(tmp_path: Path) -> None:
    ctx = FakeHosts(["a"]).context(tmp_path, Command.DEPLOY)
    (tmp_path / "other-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    for wheel in (tmp_path / "missing.whl", tmp_path / "other-1.0-py3-none-any.whl"):
        with pytest.raises(WheelhouseError, match="--wheel"):
            deploy.plan(ctx, str(wheel))
    broken = tmp_path / "imageserving_fleet-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(WheelhouseError, match="--wheel"):
        deploy.plan(ctx, str(broken))


def test_interpreters_come_from_the_selected_hosts_of_the_context(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deploy, "given_wheel", lambda path: path)  # the wheel is not the subject here
    hosts = FakeHosts(["a", "b", "c"], host_vars={"a": {"imageserving_python": "/opt/py/bin/python3"},
                                                  "b": {"ansible_python_interpreter": "auto_silent"},
                                                  "c": {"ansible_python_interpreter": "/usr/bin/python3.12"}})
    job = deploy.plan(hosts.context(tmp_path, Command.DEPLOY, limit="a:b"), "w.whl", force=True, systemd=True)
    assert dict(job.pythons) == {"a": "/opt/py/bin/python3"} and job.python("b") == "python3"
    assert job.request.force and job.request.systemd
    bad = FakeHosts(["x"], host_vars={"x": {"imageserving_python": "python3\nrm -rf /"}})
    with pytest.raises(InventoryError, match="host x: imageserving_python"):
        deploy.plan(bad.context(tmp_path, Command.DEPLOY), "w.whl")


def test_deploy_never_runs_through_a_cluster(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="deploy does not run through --cluster"):
        FakeHosts(["a"]).context(tmp_path, Command.DEPLOY, cluster="local:1")


@pytest.mark.parametrize("deployed, keys", [
    (Deployed("installed", "1.2", "/v/bin/imageserving", "/v", 3, "sftp"), []),
    (Deployed("installed", "1.2", "/v/bin/imageserving", "/v", 3, "piped", sftp_error="no sftp", systemd=True),
     ["sftp_error", "systemd"]),
])
def test_a_deployed_hosts_json_keeps_its_fields_in_order(deployed: Deployed, keys: list[str]) -> None:
    doc = HostResult("a", Result.OK, deployed=deployed).to_dict()
    assert list(doc) == ["host", "result", "reason", "status", "elapsed_s", "action", "version",
                         "imageserving_command", "venv", "uploaded", "transfer", *keys]
    assert doc.get("systemd") == ("enabled" if deployed.systemd else None)
