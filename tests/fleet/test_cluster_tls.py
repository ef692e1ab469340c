"""A become password through a tls:// cluster: accepted, used, and never in a worker's log.

Its own scheduler and one worker, both with certificates the test generates (a CA and one
certificate for 127.0.0.1, `cryptography` comes with paramiko); the controller finds its client
certificate through dask's own configuration variables, as the README tells an operator to.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("distributed") is None:  # found, not imported: collection stays light in every worker
    pytest.skip("needs the cluster extra (dask distributed)", allow_module_level=True)

from tests.sshd import SshServer  # noqa: E402

from .daskcluster import DaskCluster, tls_files  # noqa: E402
from .fleetlab import Lab  # noqa: E402

PASSWORD = "tls-only-s3cret-7f3a"


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    directory = tmp_path_factory.mktemp("dask-tls")
    with DaskCluster(directory, tls=tls_files(directory)) as cluster:
        cluster.add_worker("secure")
        cluster.wait_workers({"secure"})
        yield cluster


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/sudo").exists(), reason="needs root and sudo")
def test_a_become_password_goes_to_a_tls_cluster_and_stays_out_of_its_logs(
        sshd: SshServer, tmp_path: Path, tls_cluster: DaskCluster) -> None:
    lab = Lab(sshd, tmp_path)
    lab.add_host("t1")
    argv = [sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(lab.inventory()), "--ssh-config",
            str(sshd.ssh_config_path), "--cluster", tls_cluster.address, "-b", "-K", "--json", "status"]
    env = {**tls_cluster.client_env(), "IMAGESERVING_BECOME_PASS": PASSWORD}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    doc = json.loads(proc.stdout)
    (entry,) = doc["hosts"]
    assert entry["worker"] == tls_cluster.workers["secure"].address, (entry, proc.stderr[-2000:])
    # Reached through sudo -S: the supervisor there was never started, and says so.
    assert entry["result"] == "failed" and "not running" in entry["reason"], entry
    for log in tls_cluster.dir.glob("*.log"):
        assert PASSWORD not in log.read_text(errors="replace"), log
    assert PASSWORD not in proc.stdout + proc.stderr
