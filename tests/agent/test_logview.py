"""`imageserving logs`: the `logs:` key, ID:NAME, --grep/--since, date-rotated names; the demo's `is:access` end to end."""

from __future__ import annotations

import calendar
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imageserving_fleet.agent.config import digest, parse_config, to_dict
from imageserving_fleet.agent.config.model import ComponentConfig
from imageserving_fleet.agent.logfilter import LineFilter, compile_grep, line_time, parse_since
from imageserving_fleet.agent.logview import (
    LogSource,
    follow,
    last_lines,
    own_log,
    resolve,
    server_log,
    since_offset,
)
from imageserving_fleet.agent.reload import diff
from imageserving_fleet.errors import ConfigError, NoLogFileError, UsageError
from imageserving_fleet.home import Home

from .conftest import Agent, free_port, wait_for

UTC_0354 = calendar.timegm((2026, 12, 7, 3, 54, 15, 0, 1, 0))
LOCAL_0354 = time.mktime((2026, 12, 7, 3, 54, 15, 0, 1, -1))


@pytest.mark.parametrize("line, want", [
    ("2026-12-07T03:54:15Z started", UTC_0354),
    ("2026-12-07T03:54:15.123+01:00 started", UTC_0354 - 3600),
    ("2026-12-07T03:54:15-0500 x", UTC_0354 + 5 * 3600),
    ("2026-12-07 03:54:15,123 INFO python logging", LOCAL_0354),
    ("2026/12/07 03:54:15 [error] 123#0: nginx error log", LOCAL_0354),
    ('127.0.0.1 - - [07/Dec/2026:03:54:15 +0000] "GET / HTTP/1.1" 200 12', UTC_0354),
    ('10.0.0.1 - bob [07/Dec/2026:04:54:15 +0100] "GET /is/image HTTP/1.1" 200 12', UTC_0354),
    ("07-Dec-2026 03:54:15.123 INFO [main] org.apache.catalina.startup.Catalina.start", LOCAL_0354),
    ("[Mon Dec 07 03:54:15.123456 2026] [core:error] apache error log", LOCAL_0354),
    ("\tat java.base/java.lang.Thread.run(Thread.java:840)", None),
    ("2026-13-07T03:54:15Z month 13", None),
    ("[07/Foo/2026:03:54:15 +0000] unknown month", None),
    ("", None),
])
def test_line_time(line: str, want: float | None) -> None:
    assert line_time(line) == want


@pytest.mark.parametrize("text, want", [("10m", 600), ("2h", 7200), ("1d", 86400), ("30s", 30), ("90", 90),
                                        ("1.5d", 129600)])
def test_parse_since(text: str, want: float) -> None:
    assert parse_since(text) == want


@pytest.mark.parametrize("text", ["soon", "-5m", "10 minutes", "", "d"])
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="--since expects a duration"):
        parse_since(text)


def test_grep_refuses_a_bad_expression() -> None:
    with pytest.raises(ValueError, match="--grep: not a regular expression"):
        compile_grep("(unclosed")


LINES = [
    "continuation of an entry older than anything\n",
    "2026-12-07T03:00:00Z old error\n",
    "\tat Old.trace(Old.java:1)\n",
    "2026-12-07T03:54:15Z new error\n",
    "\tat New.trace(New.java:1)\n",
    "2026-12-07T03:55:00Z new info\n",
]


@pytest.mark.parametrize("grep, since, want", [
    (None, UTC_0354 - 60, [3, 4, 5]),                     # the stack trace follows its message
    ("error", None, [1, 3]),
    ("trace", UTC_0354 - 60, [4]),
    (None, UTC_0354 + 3600, []),
    (None, None, [0, 1, 2, 3, 4, 5]),
])
def test_filter_keeps_untimed_lines_with_the_line_before(grep: str | None, since: float | None,
                                                          want: list[int]) -> None:
    filt = LineFilter(grep=re.compile(grep) if grep else None, since=since)
    assert list(filt.filter(LINES)) == [LINES[i] for i in want]


# ------------------------------------------------------------------ which file


def touch(path: Path, text: str, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


@pytest.mark.parametrize("pattern, names", [
    ("access-*.log", ["access-2026-12-05.log", "access-2026-12-06.log", "access-2026-12-07.log"]),   # Scene7 is
    ("catalina.*.log", ["catalina.2026-12-05.log", "catalina.2026-12-06.log", "catalina.2026-12-07.log"]),
    ("localhost_access_log.*.txt", ["localhost_access_log.2026-12-05.txt", "localhost_access_log.2026-12-06.txt",
                                    "localhost_access_log.2026-12-07.txt"]),
])
def test_a_glob_reads_the_newest_match_by_mtime(tmp_path: Path, pattern: str, names: list[str]) -> None:
    for i, name in enumerate(names):
        touch(tmp_path / name, name, 1_000_000 + i)
    touch(tmp_path / "unrelated.log", "x", 2_000_000)
    assert resolve(LogSource("x", str(tmp_path / pattern))) == str(tmp_path / names[-1])
    os.utime(tmp_path / names[0], (3_000_000, 3_000_000))        # mtime, not the name, decides
    assert resolve(LogSource("x", str(tmp_path / pattern))) == str(tmp_path / names[0])


def test_nothing_there_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoLogFileError, match=r"is:access: nothing matches .*access-\*\.log"):
        resolve(LogSource("is:access", str(tmp_path / "access-*.log")))
    with pytest.raises(NoLogFileError, match="does not exist"):
        resolve(LogSource("is", str(tmp_path / "is.log")))


def test_server_log_names_and_relative_paths(tmp_path: Path) -> None:
    home = Home(str(tmp_path))
    comp = ComponentConfig("is", ("x",), logs={"access": "is/access-*.log", "trace": "/var/log/t.log"})
    assert server_log(home, comp, "ACCESS").pattern == str(tmp_path / "logs" / "is" / "access-*.log")
    assert server_log(home, comp, "trace").pattern == "/var/log/t.log"
    with pytest.raises(UsageError, match=r"is has no log named 'acces' \(its logs: access, trace\)"):
        server_log(home, comp, "acces")
    with pytest.raises(UsageError, match="none: add a `logs:` key"):
        server_log(home, ComponentConfig("ps", ("x",)), "access")
    assert own_log(home, "supervisor").pattern.endswith("/logs/Supervisor.log")


def test_last_lines_with_and_without_a_filter(tmp_path: Path) -> None:
    path = touch(tmp_path / "a.log", "".join(f"2026-12-07T03:{m:02d}:00Z line {m}\n" for m in range(60)), 0)
    assert last_lines(str(path), 3, LineFilter()) == [f"2026-12-07T03:{m:02d}:00Z line {m}\n" for m in (57, 58, 59)]
    assert len(last_lines(str(path), None, LineFilter())) == 20
    since = calendar.timegm((2026, 12, 7, 3, 50, 0, 0, 1, 0))
    assert len(last_lines(str(path), None, LineFilter(since=since))) == 10       # --since alone: all since then
    assert last_lines(str(path), 2, LineFilter(grep=re.compile("line 1[0-9]$"))) == [
        "2026-12-07T03:18:00Z line 18\n", "2026-12-07T03:19:00Z line 19\n"]


def test_since_bisects_a_big_log_and_finds_what_a_full_scan_finds(tmp_path: Path) -> None:
    start = calendar.timegm((2026, 12, 7, 0, 0, 0, 0, 1, 0))
    text = "".join(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start + i))} request {i}\n"
                   + ("\tat continuation\n" if i % 7 == 0 else "") for i in range(40_000))
    path = touch(tmp_path / "big.log", text, 0)
    since = start + 39_000
    with open(path, "rb") as fh:
        offset = since_offset(fh, since)
        fh.seek(offset)
        first = fh.read(200).decode()
    assert 0 < offset < path.stat().st_size - 30_000                 # it skipped most of the file
    assert line_time(first.split("\n", 1)[1]) is None or line_time(first.split("\n", 1)[1]) < since  # not past it
    full = text.splitlines(keepends=True)
    want = list(LineFilter(since=since).filter(full))
    assert last_lines(str(path), None, LineFilter(since=since)) == want and len(want) > 1000
    with open(path, "rb") as fh:
        assert since_offset(fh, start - 10) == 0 and since_offset(fh, start + 10**6) > 0   # before it all; after it all


def test_follow_moves_to_a_newer_match_and_filters(tmp_path: Path) -> None:
    first = touch(tmp_path / "access-2026-12-06.log", "old\n", time.time() - 60)
    got: list[str] = []
    done = threading.Event()
    source = LogSource("is:access", str(tmp_path / "access-*.log"))
    worker = threading.Thread(target=follow, args=(source, str(first), LineFilter(grep=re.compile("keep")),
                                                   got.append), kwargs={"poll": 0.02, "until": done.is_set,
                                                                                "start": first.stat().st_size})
    worker.start()
    try:
        with open(first, "a") as fh:
            fh.write("drop 1\nkeep 1\n")
        wait_for(lambda: "keep 1\n" in "".join(got))
        with open(tmp_path / "access-2026-12-07.log", "a") as fh:    # midnight: a new day's file
            fh.write("keep 2\ndrop 2\n")
        wait_for(lambda: "keep 2\n" in "".join(got))
    finally:
        done.set()
        worker.join(timeout=30)
    assert "drop" not in "".join(got) and "old" not in "".join(got)


# ------------------------------------------------------------------ the `logs:` key

BASE = "components:\n  is:\n    command: [/bin/true]\n"


@pytest.mark.parametrize("block, key", [
    ("    logs: [a.log]\n", "components.is.logs"),
    ("    logs: {Access: a.log}\n", "components.is.logs.Access"),
    ("    logs: {'is:x': a.log}\n", "components.is.logs.is:x"),
    ("    logs: {access: ''}\n", "components.is.logs.access"),
    ("    logs: {access: [a]}\n", "components.is.logs.access"),
])
def test_logs_key_refused_with_file_line_key(block: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + block, "agent.yaml")
    assert caught.value.line == 4 and caught.value.key == key and str(caught.value).startswith("agent.yaml:4: ")


def test_logs_key_changes_neither_the_digest_nor_the_process() -> None:
    import hashlib
    import json

    plain = parse_config(BASE)
    with_logs = parse_config(BASE + "    logs: {access: /var/log/is/access-*.log}\n")
    assert with_logs.component("is").logs == {"access": "/var/log/is/access-*.log"}
    # The digest of a file without the key is what an agent without `logs:` computed for it.
    old = to_dict(plain)
    old.pop("path")
    old.pop("notify", None)
    for comp in old["components"]:
        comp.pop("logs")
    assert digest(plain) == hashlib.sha256(json.dumps(old, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert digest(with_logs) != digest(plain)
    changes = diff(plain, with_logs)
    assert changes.unchanged == ("is",) and not changes.changed       # a reload restarts nothing for it


# ------------------------------------------------------------------ end to end, the demo stack


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    from imageserving_fleet.agent.config import packaged_default

    agent = Agent(Path(tmp_path_factory.mktemp("demo")))
    agent.write(packaged_default().read_text())
    ports = {"IMAGESERVING_PS_PORT": free_port(), "IMAGESERVING_IS_PORT": free_port(),
             "IMAGESERVING_SVG_PORT": free_port()}
    agent.env.update({k: str(v) for k, v in ports.items()})
    agent.is_port = ports["IMAGESERVING_IS_PORT"]  # type: ignore[attr-defined]
    agent.run("start", check=True)
    try:
        yield agent
    finally:
        agent.cleanup()


def ask(port: int, requests: list[str]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rwb")
        for req in requests:
            f.write(req.encode() + b"\n")
            f.flush()
            head = f.readline()
            if head.startswith(b"OK "):
                f.read(int(head.split()[1]))


def test_logs_is_access_on_the_demo_stack(demo: Agent) -> None:
    ask(demo.is_port, ["RENDER 16 16 one", "RENDER 16 16 two", "PING", "BOGUS", "RENDER 16 16 three"])  # type: ignore[attr-defined]
    proc = wait_for(lambda: (p := demo.run("logs", "is:access", "-n", "3")).returncode == 0
                    and p.stdout.count("\n") == 3 and "three" in p.stdout and p)
    lines = proc.stdout.splitlines()
    assert re.match(r'^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "PING" 200 5$', lines[0])
    assert '"BOGUS" 400' in lines[1] and '"RENDER 16 16 three" 200' in lines[2]
    grep = demo.run("logs", "is:access", "--grep", "RENDER", "--since", "10m")
    assert grep.returncode == 0 and [ln.split('"')[1] for ln in grep.stdout.splitlines()] == [
        "RENDER 16 16 one", "RENDER 16 16 two", "RENDER 16 16 three"]
    # The same flags on the other kinds of log, in the same output format.
    sup = demo.run("logs", "supervisor", "--grep", "STARTING -> RUNNING", "--since", "1h")
    assert sup.returncode == 0 and sup.stdout.count("STARTING -> RUNNING") == 3, sup.stdout


@pytest.mark.parametrize("args, code, message", [
    (["logs", "is:acces"], 2, "is has no log named 'acces' (its logs: access)"),
    (["logs", "ps:access"], 2, "ps has no log named 'access'"),
    (["logs", "nope:access"], 2, "unknown component 'nope'"),
    (["logs", "is:access", "--grep", "(x"], 2, "--grep: not a regular expression"),
    (["logs", "is:access", "--since", "soon"], 2, "--since expects a duration"),
    (["logs", "is", "-n", "-1"], 2, "-n must be 0 or more"),
])
def test_logs_usage_errors(demo: Agent, args: list[str], code: int, message: str) -> None:
    proc = demo.run(*args)
    assert proc.returncode == code and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_logs_with_no_file_yet_is_exit_1(demo: Agent, tmp_path: Path) -> None:
    proc = demo.run("logs", "is:access", "--home", str(tmp_path))     # a home where is never wrote
    assert proc.returncode == 1 and "no log file for is:access: nothing matches" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
