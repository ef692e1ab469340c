"""config push, reload, logs and hold-down across a fleet: a real sshd, ten logical hosts, real agents.

The hosts run small components that bind no port (so one pushed file fits every host): `is`
prints ten numbered lines and sleeps, `svg` sleeps; their env is what a push changes.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.sshd import SshServer

from .fleetlab import Lab, by_host, pids

HOSTS = [f"h{i:02d}" for i in range(10)]
TALKER = "import time\nfor i in range(1, 11): print('line', i, flush=True)\nwhile True: time.sleep(3600)"
SLEEPER = "import time\nwhile True: time.sleep(3600)"


def stack(is_env: str, svg_env: str = "same") -> str:
    comps = {
        "is": {"command": [sys.executable, "-c", TALKER], "env": {"V": is_env}, "start_delay": "100ms"},
        "svg": {"command": [sys.executable, "-c", SLEEPER], "env": {"V": svg_env}, "start_delay": "100ms"},
    }
    for c in comps.values():
        c.update(stop_timeout="2s", ready_timeout="10s")
    return yaml.safe_dump({"components": comps}, sort_keys=False)


@pytest.fixture(scope="module")
def fleet(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Ten hosts started once for the module (the tests below run in order and build on each other)."""
    lab = Lab(sshd, tmp_path_factory.mktemp("cfgfleet"))
    for name in HOSTS:
        Path(lab.add_host(name)["imageserving_config"]).write_text(stack("one"))
    code, doc = lab.fleet_json("-f", "10", "start")
    assert code == 0, doc
    yield lab
    lab.fleet("-f", "10", "stop")  # in parallel; stop_all (one host after the other) then finds little left
    lab.stop_all()


def config_of(lab: Lab, host: str) -> Path:
    return Path(lab.hosts[host]["imageserving_config"])


def test_config_push_in_batches_of_three_restarts_only_what_changed(fleet: Lab, tmp_path: Path) -> None:
    _, before = fleet.fleet_json("-f", "10", "status")
    new = tmp_path / "agent.yaml"
    new.write_text(stack("two"))
    proc = fleet.fleet("-f", "10", "config", "push", str(new), "--serial", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    batches = re.findall(r"batch (\d)/4: ([\w, ]+)", proc.stderr)
    assert [b[1].split(", ") for b in batches] == [HOSTS[0:3], HOSTS[3:6], HOSTS[6:9], HOSTS[9:]]
    assert "hosts=10 ok=10" in proc.stdout
    _, after = fleet.fleet_json("-f", "10", "status")
    old, now = by_host(before), by_host(after)
    digests = set()
    for host in HOSTS:
        assert now[host]["result"] == "ok"
        assert pids(now[host])["is"] != pids(old[host])["is"]    # changed: restarted
        assert pids(now[host])["svg"] == pids(old[host])["svg"]  # untouched: same pid
        assert config_of(fleet, host).read_text() == stack("two")
        assert Path(f"{config_of(fleet, host)}.prev").read_text() == stack("one")
        digests.add(now[host]["status"]["supervisor"]["config_digest"])
    assert len(digests) == 1
    # one host drifts: the table grows a config column
    config_of(fleet, "h00").write_text(stack("two", svg_env="drift"))
    code, doc = fleet.fleet_json("-l", "h00", "reload")
    assert code == 0 and by_host(doc)["h00"]["status"]["reload"]["changed"] == ["svg"], doc
    table = fleet.fleet("-f", "10", "status").stdout
    assert "config" in table  # the column appears only when digests differ


def test_a_broken_file_is_refused_by_every_host_each_with_its_message(fleet: Lab, tmp_path: Path) -> None:
    _, before = fleet.fleet_json("-f", "10", "status")
    broken = tmp_path / "broken.yaml"
    broken.write_text(stack("three").replace("start_delay", "start_dlay", 1))
    code, doc = fleet.fleet_json("-f", "10", "config", "push", str(broken))
    assert code == 2 and doc["summary"]["failed"] == 10, doc
    kept = {h: config_of(fleet, h).read_text() for h in HOSTS}
    for host in HOSTS:
        entry = by_host(doc)[host]
        assert entry["result"] == "failed"
        # the host's own agent said it, about the file as pushed to that host
        assert f"{config_of(fleet, host)}.pushed-" in entry["reason"], entry["reason"]
        assert "components.is.start_dlay" in entry["reason"] and "unknown key" in entry["reason"]
        assert "three" not in kept[host]  # the old file stays
        assert not list(config_of(fleet, host).parent.glob("agent.yaml.pushed-*"))
    _, after = fleet.fleet_json("-f", "10", "status")
    assert {h: pids(e) for h, e in by_host(after).items()} == {h: pids(e) for h, e in by_host(before).items()}


def test_logs_from_several_hosts_prefixed_in_inventory_order(fleet: Lab) -> None:
    proc = fleet.fleet("-l", "h03:h01:h02", "logs", "is", "-n", "5")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [f"{h} | line {i}" for h in ("h01", "h02", "h03") for i in range(6, 11)]
    code, doc = fleet.fleet_json("-l", "h01,h02", "logs", "is", "-n", "2")
    assert code == 0
    assert [(h["host"], h["lines"]) for h in doc["hosts"]] == [("h01", ["line 9", "line 10"]),
                                                               ("h02", ["line 9", "line 10"])]
    grouped = fleet.fleet("-l", "h03:h01:h02", "logs", "is", "-n", "2", "--group")  # identical: one block
    assert (grouped.returncode, grouped.stdout) == (0, "-" * 12 + "\nh[01-03] (3)\n" + "-" * 12 + "\nline 9\nline 10\n")
    # --grep filtered by each host's agent: only the matching lines came back
    grep = fleet.fleet("-l", "h01:h02", "logs", "is", "-n", "5", "--grep", "^line 1", "--group")
    shown = grep.stdout.splitlines()
    assert grep.returncode == 0 and shown[:3] == ["-" * 12, "h[01-02] (2)", "-" * 12], grep  # one block
    assert "line 10" in shown[3:] and all(ln in ("line 1", "line 10") for ln in shown[3:]), grep


def test_a_held_component_leaves_its_host_ok_until_started(fleet: Lab) -> None:
    code, doc = fleet.fleet_json("-l", "h04", "stop", "is")
    assert code == 0, doc
    code, doc = fleet.fleet_json("-l", "h04:h05", "status")
    assert code == 0, doc
    h04 = by_host(doc)["h04"]
    assert (h04["result"], h04["reason"]) == ("ok", "held down: is")
    assert json.dumps(by_host(doc)["h05"]["reason"]) == '""'
    table = fleet.fleet("-l", "h04", "status").stdout
    assert "held down: is" in table and "held" in table
    code, doc = fleet.fleet_json("-l", "h04", "reload")  # a reload does not bring it back
    assert code == 0 and by_host(doc)["h04"]["reason"] == "held down: is", doc
    code, doc = fleet.fleet_json("-l", "h04", "start", "is")
    assert code == 0, doc
    comp = next(c for c in by_host(doc)["h04"]["status"]["components"] if c["id"] == "is")
    assert comp["state"] == "RUNNING" and comp["held"] is False
