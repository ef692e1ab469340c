"""Honest memory: PSS and USS of a component's tree from smaps_rollup, beside RSS; the table and max_memory use PSS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from imageserving_fleet.agent.memory import (
    Memory,
    MemorySampler,
    children_map,
    measure,
    over_limit,
    parse_rollup,
    tree_pids,
)
from imageserving_fleet.agent.render import shown_memory, status_table

from .conftest import Agent, component, config, free_port, prog, wait_for

ROLLUP = """55d0c0a00000-7ffd5b5f3000 ---p 00000000 00:00 0                          [rollup]
Rss:               10240 kB
Pss:                4096 kB
Pss_Anon:           2048 kB
Shared_Clean:       6144 kB
Private_Clean:      1024 kB
Private_Dirty:      2048 kB
Swap:                  0 kB
"""


@pytest.mark.parametrize("text, want", [
    (ROLLUP, (10240 * 1024, 4096 * 1024, 3072 * 1024)),
    ("Rss: 8 kB\nPss: 8 kB\n", (8192, 8192, 0)),                 # no Private_* lines: USS 0, not a crash
    ("Rss: 8 kB\n", None),                                       # no Pss: not a rollup we can use
    ("", None),
    ("Rss: x kB\nPss: 1 kB\n", None),
])
def test_parse_rollup(text: str, want: tuple[int, int, int] | None) -> None:
    assert parse_rollup(text) == want


@pytest.mark.parametrize("mem, want", [(Memory(100, 40, 10), 40), (Memory(100), 100)])
def test_effective_is_pss_where_known_else_rss(mem: Memory, want: int) -> None:
    assert mem.effective == want


@pytest.mark.parametrize("mem, limit, want", [
    (Memory(170 * 2**20, 54 * 2**20, 1), 120 * 2**20, False),   # nginx-like: RSS sum over, PSS under: no restart
    (Memory(170 * 2**20), 120 * 2**20, True),                   # no PSS from the kernel: RSS decides
    (Memory(170 * 2**20, 130 * 2**20, 1), 120 * 2**20, True),
    (None, 1, False),
])
def test_max_memory_acts_on_pss_where_known(mem: Memory | None, limit: int, want: bool) -> None:
    assert over_limit(mem, limit) is want


def test_table_shows_pss_where_given_else_rss() -> None:
    assert shown_memory({"rss_bytes": 300 * 2**20, "pss_bytes": 100 * 2**20}) == 100 * 2**20
    assert shown_memory({"rss_bytes": 300 * 2**20, "pss_bytes": None}) == 300 * 2**20
    doc = {"supervisor": {"state": "RUNNING", "pid": 1, "rss_bytes": 2**20},
           "components": [{"id": "ps", "state": "RUNNING", "pid": 2, "rss_bytes": 300 * 2**20,
                           "pss_bytes": 100 * 2**20, "restarts": 0}]}
    table = status_table(doc, color=False)
    assert "100.0 MiB" in table and "300.0 MiB" not in table


def test_sampler_keeps_a_sample_per_pid_for_its_interval() -> None:
    calls: list[int] = []

    def fake(pid: int) -> Memory:
        calls.append(pid)
        return Memory(pid * 10, pid, pid)

    s = MemorySampler(every=1.5)
    assert s.memory("is", 7, 100.0, fake) == Memory(70, 7, 7)
    assert s.memory("is", 7, 101.0, fake) == Memory(70, 7, 7) and calls == [7]   # cached
    assert s.memory("is", 8, 101.1, fake) == Memory(80, 8, 8) and calls == [7, 8]  # new pid: at once
    assert s.memory("is", 8, 102.7, fake) is not None and calls == [7, 8, 8]       # interval over
    assert s.memory("is", None, 103.0, fake) is None


def test_measure_of_a_gone_pid_is_none_and_does_not_count() -> None:
    gone = 2**22 + 12345  # above pid_max's default: never a live process
    assert measure([gone]) is None
    mine = measure([os.getpid(), gone])
    assert mine is not None and mine.pss is not None and 0 < mine.pss <= mine.rss


def test_tree_pids_finds_what_psutil_finds() -> None:
    import subprocess
    import sys

    import psutil

    # Rooted at our own child, not at this process: a pytest worker has other children (the
    # session's sshd) that this test must neither count nor kill.
    child = subprocess.Popen([sys.executable, "-c", "import os, time; os.fork(); time.sleep(60)"])
    root = psutil.Process(child.pid)
    try:
        wait_for(lambda: len(root.children(recursive=True)) >= 1)
        want = {child.pid, *(c.pid for c in root.children(recursive=True))}
        assert set(tree_pids(child.pid)) == want
        assert set(tree_pids(child.pid, children_map())) == want
    finally:
        for c in root.children(recursive=True):
            c.kill()
        child.kill()
        child.wait()
    assert tree_pids(2**22 + 12345) == []


# ------------------------------------------------------------ real processes under a supervisor


NGINX = "/usr/sbin/nginx"


def nginx_component(root: Path, port: int) -> str:
    """Real nginx as a Scene7 install runs it: a master and two workers, in the foreground, under a private prefix."""
    for sub in ("logs", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    temps = " ".join(f"{kind}_temp_path {root}/tmp/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (root / "nginx.conf").write_text(
        f"daemon off; master_process on; worker_processes 2; {user}\npid {root}/nginx.pid;\n"
        f"error_log {root}/logs/error.log notice;\nevents {{ worker_connections 64; }}\n"
        f"http {{ access_log {root}/logs/access.log; {temps}\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }} }}\n")
    return component("ng", [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "logs/error.log")],
                     ready={"tcp": f"127.0.0.1:{port}"}, logs={"error": f"{root}/logs/error*.log"})


@pytest.fixture(scope="module")
def sharing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One supervisor running a parent that shares 48 MiB with two forked children, a single process,
    and real nginx (master and two workers) when it is installed."""
    agent = Agent(Path(tmp_path_factory.mktemp("memory")))
    port, single = free_port(), free_port()
    blocks = [
        component("share", prog("share", "48", str(port)), ready={"tcp": f"127.0.0.1:{port}"}),
        component("one", prog("listen", str(single)), ready={"tcp": f"127.0.0.1:{single}"}),
    ]
    if os.access(NGINX, os.X_OK):
        blocks.append(nginx_component(agent.root / "nginx", free_port()))
    agent.write(config(*blocks))
    agent.run("start", check=True)
    try:
        yield agent
    finally:
        agent.cleanup()


def test_pss_at_most_rss_for_every_component_and_the_supervisor(sharing: Agent) -> None:
    doc = wait_for(lambda: (d := sharing.status()) and all(c.get("pss_bytes") for c in d["components"]) and d)
    for row in [doc["supervisor"], *doc["components"]]:
        assert row["uss_bytes"] <= row["pss_bytes"] <= row["rss_bytes"], row


def test_a_forked_tree_has_pss_well_below_its_rss_sum(sharing: Agent) -> None:
    comp = wait_for(lambda: (c := sharing.comp("share")) and len(tree_pids(c["pid"])) == 3 and c)
    # Measured afresh here (the status may hold a sample from before the fork).
    mem = measure(tree_pids(comp["pid"]))
    assert mem is not None and mem.pss is not None and mem.uss is not None
    assert mem.rss > 3 * 48 * 2**20                  # each of the three maps the 48 MiB
    assert mem.pss < 0.6 * mem.rss                   # PSS counts it about once
    assert mem.uss < mem.pss


@pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason="nginx is not installed (apt-get install -y nginx)")
def test_real_nginx_pss_is_well_below_its_rss_sum_and_its_error_log_reads(sharing: Agent) -> None:
    ng = wait_for(lambda: (c := sharing.comp("ng")) and len(tree_pids(c["pid"])) == 3 and c)
    mem = measure(tree_pids(ng["pid"]))
    assert mem is not None and mem.pss is not None
    assert mem.pss < 0.5 * mem.rss, mem          # the master and both workers map the same binary and libraries
    assert ng["pss_bytes"] <= ng["rss_bytes"]
    # nginx's own error log, through the component's `logs:` key.
    proc = wait_for(lambda: (p := sharing.run("logs", "ng:error", "--grep", "start worker process ", "--since", "1h"))
                    .stdout.count("\n") == 2 and p)
    assert proc.returncode == 0 and all("[notice]" in line for line in proc.stdout.splitlines())
