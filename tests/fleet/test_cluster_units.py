"""--cluster's pure parts, table-tested; and the promise that no --cluster imports nothing of dask."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imageserving_fleet.errors import InventoryVariableError, UsageError
from imageserving_fleet.fleet.cluster.address import ClusterAddress, Kind, parse_address
from imageserving_fleet.fleet.cluster.placement import MAX_SHARD, place, resources_for, shard_size
from imageserving_fleet.fleet.cluster.policy import POLICY, OnLostWorker, on_lost_worker
from imageserving_fleet.fleet.cluster.shard import Secret, Shard
from imageserving_fleet.fleet.context import Command, resolve
from imageserving_fleet.fleet.jobs import STATUS
from imageserving_fleet.fleet.jobs import Kind as JobKind
from imageserving_fleet.fleet.options import Options
from imageserving_fleet.fleet.results import Result
from imageserving_fleet.fleet.target import FleetOptions, make_target

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, expected", [
    ("local:2", ClusterAddress(Kind.LOCAL, workers=2)),
    (" local:16 ", ClusterAddress(Kind.LOCAL, workers=16)),
    ("tcp://10.0.0.5:8786", ClusterAddress(Kind.TCP, host="10.0.0.5", port=8786)),
    ("TLS://sched.example.com:8786/", ClusterAddress(Kind.TLS, host="sched.example.com", port=8786)),
    ("tls://[::1]:8786", ClusterAddress(Kind.TLS, host="[::1]", port=8786)),
])
def test_addresses(text: str, expected: ClusterAddress) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", [
    "local:0", "local:", "local:x", "local:999", "tcp://host", "tcp://:8786", "tcp://host:0", "tcp://host:70000",
    "udp://host:1", "host:8786", "inproc://x", "tcp://a b:1", "", "tls://host:8786/path",
])
def test_bad_addresses_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--cluster"):
        parse_address(text)


def test_address_properties() -> None:
    assert parse_address("tls://h:1").encrypted and not parse_address("tcp://h:1").encrypted
    assert str(parse_address("tcp://h:1")) == "tcp://h:1" and str(parse_address("local:3")) == "local:3"


@pytest.mark.parametrize("hosts, workers, forks, size", [
    (500, 2, 50, MAX_SHARD),   # capped: a lost worker costs at most MAX_SHARD re-asks per shard
    (40, 2, 50, 5),            # 8 shards for 2 workers
    (4, 2, 50, 1),
    (1, 20, 50, 1),
    (500, 2, 3, 3),            # never more hosts in a shard than --forks
    (0, 2, 50, 1),
])
def test_shard_size(hosts: int, workers: int, forks: int, size: int) -> None:
    assert shard_size(hosts, workers, forks) == size


def _targets(spec: dict[str, str | None]):  # type: ignore[no-untyped-def]
    return [make_target(name, {"imageserving_worker": w} if w else {}, FleetOptions()) for name, w in spec.items()]


def test_placement_groups_by_resource_in_order_and_answers_the_unoffered() -> None:
    targets = _targets({"a": None, "e1": "east", "b": None, "n1": "north", "e2": "east", "c": None})
    placed = place(targets, {"east", "west"}, size=2)
    assert [(r, [t.name for t in ts]) for r, ts in placed.shards] == [
        (None, ["a", "b"]), (None, ["c"]), ("east", ["e1", "e2"])]
    (lost,) = placed.unplaceable
    assert (lost.host, lost.result, lost.reason) == ("n1", Result.UNREACHABLE, "no worker offers north")
    assert resources_for("east") == {"east": 1} and resources_for(None) is None


@pytest.mark.parametrize("kind, policy", [
    (JobKind.STATUS, OnLostWorker.ASK_AGAIN), (JobKind.VERSION, OnLostWorker.ASK_AGAIN), (JobKind.LOGS, OnLostWorker.ASK_AGAIN),
    (JobKind.HTTP_GATE, OnLostWorker.ASK_AGAIN),
    (JobKind.START, OnLostWorker.FAIL), (JobKind.STOP, OnLostWorker.FAIL), (JobKind.RESTART, OnLostWorker.FAIL),
    (JobKind.RELOAD, OnLostWorker.FAIL), (JobKind.CONFIG_PUSH, OnLostWorker.FAIL), (JobKind.DEPLOY, OnLostWorker.FAIL),
])
def test_lost_worker_policy_per_kind(kind: JobKind, policy: OnLostWorker) -> None:
    assert on_lost_worker(kind) is policy
    assert set(POLICY) == set(JobKind)  # every kind has its entry: none falls through a default
    assert policy is (OnLostWorker.ASK_AGAIN if kind.read_only else OnLostWorker.FAIL)


@pytest.mark.parametrize("value, ok", [("east", True), ("dc-1.rack_2", True), ("1east", False), ("a b", False),
                                       ("x=1", False)])
def test_imageserving_worker_must_be_a_resource_name(value: str, ok: bool) -> None:
    if ok:
        assert make_target("h", {"imageserving_worker": value}, FleetOptions()).worker == value
    else:
        with pytest.raises(InventoryVariableError, match="imageserving_worker"):  # exit 1, as every bad variable
            make_target("h", {"imageserving_worker": value}, FleetOptions())


def test_a_shard_never_shows_its_password_but_carries_it() -> None:
    secret = Secret("hunter2")
    shard = Shard(0, tuple(_targets({"a": None})), FleetOptions(), STATUS, 30.0, 5, secret)
    assert "hunter2" not in repr(shard) + str(secret) + repr(secret) + repr(shard.become_password)
    copy = pickle.loads(pickle.dumps(shard))
    assert copy.become_password is not None and copy.become_password.reveal() == "hunter2"


def test_refusals_come_before_any_cluster_or_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    h1:\n      ansible_host: 127.0.0.1\n      ansible_become: true\n")
    options = Options(inventory=(str(inventory),), cluster="tcp://127.0.0.1:1", ask_become_pass=True)

    def never(_: str) -> str:
        raise AssertionError("prompted before refusing")

    with pytest.raises(UsageError, match="only to a tls:// cluster"):
        resolve(options, {}, Command.STATUS, prompt=never)
    with pytest.raises(UsageError, match="deploy does not run through --cluster"):
        resolve(options, {}, Command.DEPLOY, prompt=never)
    with pytest.raises(UsageError, match="--cluster 'bogus'"):
        resolve(Options(inventory=(str(inventory),)), {"IMAGESERVING_CLUSTER": "bogus"}, Command.STATUS)


def test_an_ssh_password_goes_only_to_a_tls_cluster(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    h1:\n      ansible_host: 127.0.0.1\n      ansible_password: pw\n")
    with pytest.raises(UsageError, match="an SSH password .* is sent only to a tls:// cluster"):
        resolve(Options(inventory=(str(inventory),), cluster="tcp://127.0.0.1:1"), {}, Command.STATUS)
    with pytest.raises(UsageError, match="an SSH password .* is sent only to a tls:// cluster"):
        resolve(Options(inventory=(str(inventory),), cluster="tcp://127.0.0.1:1"),
                {"IMAGESERVING_SSH_PASS": "x"}, Command.STATUS)
    target = resolve(Options(inventory=(str(inventory),)), {}, Command.HOSTS).targets[0]
    assert "pw" not in repr(target) and target.password is not None
    copy = pickle.loads(pickle.dumps(target))  # as a shard carries it to a tls:// cluster's worker
    assert copy.password is not None and copy.password.reveal() == "pw"


def test_without_cluster_nothing_of_dask_is_imported(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    here:\n      ansible_connection: local\n")
    script = textwrap.dedent(f"""
        import os, sys
        os.environ.pop("IMAGESERVING_CLUSTER", None)
        from imageserving_fleet.fleet import cli  # noqa: F401  everything a command imports
        from imageserving_fleet.fleet.cluster import address, connect, placement, policy, shard  # noqa: F401
        from imageserving_fleet.fleet.commands.run import open_fanout
        from imageserving_fleet.fleet.context import Command, resolve
        from imageserving_fleet.fleet.options import Options
        open_fanout(resolve(Options(inventory=({str(inventory)!r},)), os.environ, Command.STATUS)).close()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        assert not loaded, loaded
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
