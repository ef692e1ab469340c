"""The audit log module: redaction, the line, 0600, whole lines under concurrency, written on Ctrl-C."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from imageserving_fleet.fleet.audit import REDACTED, AuditEntry, AuditLog, AuditLogError, audit_path, redact
from imageserving_fleet.fleet.results import HostResult, Result

R = REDACTED


@pytest.mark.parametrize(("argv", "shown"), [
    (["restart", "-l", "web*"], ["restart", "-l", "web*"]),
    (["-K", "restart"], ["-K", "restart"]),                                  # a flag that only asks
    (["-k", "--ask-become-pass", "stop"], ["-k", "--ask-become-pass", "stop"]),
    (["--become-password", "hunter2", "restart"], ["--become-password", R, "restart"]),
    (["--become-password=hunter2", "restart"], [f"--become-password={R}", "restart"]),
    (["--become-pass", "x", "--ssh-pass=y"], ["--become-pass", R, f"--ssh-pass={R}"]),
    (["--password", "p", "--api-token", "t", "--client-secret", "s"], ["--password", R, "--api-token", R,
                                                                       "--client-secret", R]),
    (["--cluster", "tls://ops:s3cret@sched:8786", "restart"], ["--cluster", f"tls://ops:{R}@sched:8786", "restart"]),
    (["--before", "curl https://u:pw@lb/drain"], ["--before", f"curl https://u:{R}@lb/drain"]),
    (["--cluster", "tcp://sched:8786"], ["--cluster", "tcp://sched:8786"]),   # no credentials: as is
    (["--private-key", "~/.ssh/id_ed25519"], ["--private-key", "~/.ssh/id_ed25519"]),  # a path is no secret
    (["--become-password"], ["--become-password"]),                          # nothing after it
])
def test_redact(argv: list[str], shown: list[str]) -> None:
    assert redact(argv) == shown


def test_audit_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert audit_path(None, {}) == tmp_path / ".imageserving-fleet" / "audit.jsonl"
    assert audit_path(None, {"IMAGESERVING_AUDIT_LOG": "/x/env.jsonl"}) == Path("/x/env.jsonl")
    assert audit_path("/x/opt.jsonl", {"IMAGESERVING_AUDIT_LOG": "/x/env.jsonl"}) == Path("/x/opt.jsonl")


def entry(**kw: object) -> AuditEntry:
    base: dict[str, object] = {"command": "restart", "argv": ["restart"], "inventory": ["inv.yml"], "limit": None}
    return AuditEntry(**(base | kw))  # type: ignore[arg-type]


def test_line_has_every_field_and_survives_hostile_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = audit_path(None, {})
    log = AuditLog.open(path)
    e = entry(limit="web*")
    e.hosts = [HostResult("h1", Result.OK), HostResult("h2", Result.FAILED, "boom \x1b]0;PWNED\x07 \udc80")]
    e.exit = 2
    log.append(e)
    log.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    raw = path.read_bytes()
    assert raw.count(b"\n") == 1 and b"\x1b" not in raw
    doc = json.loads(raw)
    assert set(doc) >= {"time", "user", "controller", "argv", "inventory", "limit", "command", "hosts", "exit"}
    assert doc["hosts"] == [{"host": "h1", "result": "ok", "reason": ""},
                            {"host": "h2", "result": "failed", "reason": "boom \x1b]0;PWNED\x07 \udc80"}]
    assert (doc["limit"], doc["exit"], doc["command"]) == ("web*", 2, "restart")


@pytest.mark.parametrize("make", [
    lambda tmp: tmp,                                                       # a directory
    lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "audit.jsonl",  # under a regular file
])
def test_unwritable_audit_log_names_the_path(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(AuditLogError, match=str(path)):
        AuditLog.open(path)


def test_recording_writes_on_ctrl_c_with_what_is_known(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with pytest.raises(KeyboardInterrupt), AuditLog.open(path).recording(entry()) as record:
        record.hosts = [HostResult("h1", Result.OK)]
        raise KeyboardInterrupt
    doc = json.loads(path.read_text())
    assert doc["exit"] == 99 and doc["hosts"][0]["host"] == "h1"


def test_recording_writes_the_exit_it_was_given(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog.open(path).recording(entry()) as record:
        record.exit = 4
    with pytest.raises(RuntimeError), AuditLog.open(path).recording(entry()):
        raise RuntimeError("bug")
    assert [json.loads(line)["exit"] for line in path.read_text().splitlines()] == [4, 1]


def _writer(path: str, n: int, tag: str) -> None:
    log = AuditLog.open(Path(path))
    for i in range(n):
        e = entry(command=tag)
        e.hosts = [HostResult(f"{tag}-{i}-{j:04d}", Result.FAILED, "x" * 200) for j in range(300)]  # ~70 KiB
        log.append(e)
    log.close()


def test_concurrent_runs_never_interleave_a_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), 15, f"w{k}")) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == 60
    assert all(len(json.loads(line)["hosts"]) == 300 for line in lines[:-1])
    assert os.path.getsize(path) > 4 * 2**20  # lines far past PIPE_BUF: the lock is what keeps them whole
