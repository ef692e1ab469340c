"""imageserving-fleet end to end: a real sshd on loopback, logical hosts, real agents and components."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import SshServer, closed_port, keygen, silent_listener

from .fleetlab import Lab, by_host, pids


@pytest.fixture
def lab(sshd: SshServer, tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(sshd, tmp_path)
    yield lab
    lab.stop_all()


def test_start_status_restart_one_component_stop(lab: Lab) -> None:
    for name in ("is01", "is02", "is03"):
        lab.add_host(name)
    code, doc = lab.fleet_json("start")
    assert code == 0, doc
    assert doc["summary"] == {"hosts": 3, "ok": 3, "degraded": 0, "failed": 0, "unreachable": 0, "skipped": 0}
    assert [h["host"] for h in doc["hosts"]] == ["is01", "is02", "is03"]  # inventory order

    code, doc = lab.fleet_json("status")
    assert code == 0
    before = {h: pids(e) for h, e in by_host(doc).items()}
    for entry in doc["hosts"]:
        assert entry["result"] == "ok" and entry["elapsed_s"] > 0
        assert {c["id"]: c["state"] for c in entry["status"]["components"]} == {
            "is": "RUNNING", "svg": "RUNNING", "ps": "RUNNING"}
        assert all(c["rss_bytes"] > 0 for c in entry["status"]["components"])

    code, doc = lab.fleet_json("restart", "IS")
    assert code == 0, doc
    code, doc = lab.fleet_json("status")
    after = {h: pids(e) for h, e in by_host(doc).items()}
    for host in before:
        assert after[host]["is"] != before[host]["is"]
        assert after[host]["ps"] == before[host]["ps"] and after[host]["svg"] == before[host]["svg"]

    table = lab.fleet("status")
    assert table.returncode == 0
    assert "hosts=3 ok=3 degraded=0 failed=0 unreachable=0 skipped=0" in table.stdout
    assert "RUNNING" in table.stdout and "MiB" in table.stdout

    code, doc = lab.fleet_json("stop")
    assert code == 0
    code, doc = lab.fleet_json("status")
    assert code == 2 and doc["summary"]["failed"] == 3
    assert all("not running" in h["reason"] for h in doc["hosts"])


def test_rolling_restart_goes_batch_by_batch(lab: Lab) -> None:
    names = ["r1", "r2", "r3"]  # a batch of two, then the rest
    for name in names:
        lab.add_host(name)
    assert lab.fleet_json("start")[0] == 0
    proc = lab.fleet("restart", "--serial", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "batch 1/2: r1, r2" in proc.stderr and "batch 2/2: r3" in proc.stderr
    stamp = re.compile(r"^(\S+) is STARTING -> RUNNING", re.M)

    def last_running(name: str) -> str:
        return stamp.findall(lab.log(name))[-1]

    def stop_began(name: str) -> str:
        return re.findall(r"^(\S+) supervisor pid \d+ exiting", lab.log(name), re.M)[-1]

    # The second batch was stopped only after the first batch was up again.
    assert max(last_running("r1"), last_running("r2")) < stop_began("r3")


def test_rolling_restart_supervisor_keeps_every_component(lab: Lab) -> None:
    """`restart supervisor --serial 1`: a new supervisor on each host in turn, no component restarted."""
    for name in ("s1", "s2"):
        lab.add_host(name)
    assert lab.fleet_json("start")[0] == 0
    before = {h: e["status"] for h, e in by_host(lab.fleet_json("status")[1]).items()}
    proc = lab.fleet("restart", "supervisor", "--serial", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "batch 2/2: s2" in proc.stderr
    after = {h: e["status"] for h, e in by_host(lab.fleet_json("status")[1]).items()}
    for host, doc in before.items():
        assert after[host]["supervisor"]["pid"] != doc["supervisor"]["pid"]
        assert [(c["pid"], c["restarts"]) for c in after[host]["components"]] == \
            [(c["pid"], c["restarts"]) for c in doc["components"]]


def test_bad_hosts_each_get_their_reason_and_the_deadline_holds(lab: Lab, sshd: SshServer, tmp_path: Path) -> None:
    lab.add_host("good1")
    lab.add_host("good2")
    with closed_port() as closed, silent_listener() as silent, SshServer() as other:
        lab.add_host("refused", ansible_port=closed)
        lab.add_host("hangs", ansible_port=silent)
        wrong_key = keygen(tmp_path / "wrong_key")
        lab.add_host("badkey", ansible_ssh_private_key_file=str(wrong_key))
        lab.add_host("unknownkey", ansible_port=other.port)  # its host key is in no known_hosts
        lab.add_host("noagent", imageserving_command=str(tmp_path / "no" / "imageserving"))
        liar = tmp_path / "liar"
        liar.write_text("#!/bin/sh\necho 'this is not JSON'\n")
        liar.chmod(0o755)
        lab.add_host("garbage", imageserving_command=str(liar))
        lab.add_host("dns", ansible_host="no-such-host.invalid")
        assert lab.fleet_json("-l", "good*", "start")[0] == 0

        # As with OpenSSH, ssh_config's IdentityFile is tried too: point it at the wrong key as well,
        # so only hosts with the right key in their inventory variables get in.
        config = sshd.write_ssh_config(tmp_path / "ssh_config", identity=wrong_key)
        started = time.monotonic()
        # Deadlines a ten times slower machine still meets for the good hosts (they take ~0.3 s here).
        code, doc = lab.fleet_json("status", "--timeout", "10", "--connect-timeout", "8", ssh_config=config)
        elapsed = time.monotonic() - started
    hosts = by_host(doc)
    assert code == 4
    assert elapsed < 10 + 30, elapsed  # the deadline plus a slow start-up: never a hang on the silent port
    assert hosts["good1"]["result"] == "ok" and hosts["good2"]["result"] == "ok"
    expected = {"refused": "refused", "hangs": "timeout", "badkey": "auth", "unknownkey": "unknown host key",
                "noagent": "agent missing", "dns": "dns"}
    for host, reason in expected.items():
        assert hosts[host]["result"] == "unreachable", hosts[host]
        assert hosts[host]["reason"].startswith(reason), hosts[host]
    assert hosts["garbage"]["result"] == "failed" and "bad JSON" in hosts["garbage"]["reason"]
    assert doc["summary"] == {"hosts": 9, "ok": 2, "degraded": 0, "failed": 1, "unreachable": 6, "skipped": 0}


def test_changed_host_key_is_refused_whatever_the_policy(lab: Lab, sshd: SshServer, tmp_path: Path) -> None:
    lab.add_host("changed")
    other = keygen(tmp_path / "other_host_key")
    known = sshd.write_known_hosts(tmp_path / "known_hosts", Path(str(other) + ".pub").read_text())
    config = sshd.write_ssh_config(tmp_path / "ssh_config", known_hosts=known)
    for policy in ("reject", "accept-new", "warn"):
        code, doc = lab.fleet_json("ping", "--host-key-policy", policy, ssh_config=config)
        assert code == 4 and doc["hosts"][0]["reason"].startswith("changed host key"), doc


def test_accept_new_records_an_unknown_key(lab: Lab, sshd: SshServer, tmp_path: Path) -> None:
    lab.add_host("new")
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = sshd.write_ssh_config(tmp_path / "ssh_config", known_hosts=known)
    code, doc = lab.fleet_json("ping", ssh_config=config)
    assert code == 4 and doc["hosts"][0]["reason"].startswith("unknown host key")
    code, doc = lab.fleet_json("ping", "--host-key-policy", "accept-new", ssh_config=config)
    assert code == 0 and doc["hosts"][0]["agent_version"]
    assert sshd.host_pub.split()[1] in known.read_text()
    code, doc = lab.fleet_json("ping", ssh_config=config)  # now known: reject lets it in
    assert code == 0


def test_errors_before_any_host_and_bad_options(lab: Lab, tmp_path: Path) -> None:
    lab.add_host("x")
    proc = lab.fleet("status", "-l", "nomatch*")
    assert proc.returncode == 1 and "matches no host" in proc.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("all:\n  hosts:\n    a: [\n")
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(broken), "status"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "broken.yml:" in proc.stderr and "Traceback" not in proc.stderr
    assert lab.fleet("status", "--forks", "many").returncode == 5
    assert lab.fleet("restart", "--serial", "0").returncode == 5
    proc = lab.fleet("status", "is;reboot")
    assert proc.returncode == 5 and "invalid component id" in proc.stderr


def test_hostile_inventory_values_are_quoted(lab: Lab, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    lab.add_host("evil", imageserving_home=f"$(touch {pwned})")
    lab.add_host("evil2", imageserving_config=f"x; touch {pwned}")
    code, doc = lab.fleet_json("status")
    assert not pwned.exists()
    assert code in (1, 2, 4) and all(h["result"] != "ok" for h in doc["hosts"])


def test_hosts_and_ping(lab: Lab) -> None:
    lab.add_host("p1")
    proc = lab.fleet("hosts")
    assert proc.returncode == 0 and "p1" in proc.stdout and "127.0.0.1" in proc.stdout
    code, doc = lab.fleet_json("ping")
    assert code == 0 and doc["hosts"][0]["agent_version"] == __import__("imageserving_fleet").__version__


def test_local_connection_needs_no_ssh(tmp_path: Path) -> None:
    import subprocess
    import sys

    from .fleetlab import agent_wrapper, demo_config

    config = tmp_path / "agent.yaml"
    demo_config(config)
    agent = agent_wrapper(tmp_path)
    inv = tmp_path / "hosts.ini"
    inv.write_text(f"me ansible_connection=local imageserving_home={tmp_path / 'h'} "
                   f"imageserving_config={config} imageserving_command={agent}\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inv), *a],
                                    capture_output=True, text=True, timeout=120)
    try:
        assert run("start").returncode == 0
        proc = run("status")
        assert proc.returncode == 0 and "hosts=1 ok=1" in proc.stdout
    finally:
        subprocess.run([str(agent), "--home", str(tmp_path / "h"), "stop"], capture_output=True, timeout=60)
    shutil.rmtree(tmp_path / "h", ignore_errors=True)
