"""The one Check interface behind readiness and liveness: verdicts, timeouts, a dripping server."""

from __future__ import annotations

import os
import socket
import threading
import time

from imageserving_fleet.agent.config import ReadyCheck
from imageserving_fleet.agent.readiness import Check

from .conftest import wait_for


def test_a_server_dripping_bytes_cannot_stretch_an_http_check_past_its_timeout() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def drip() -> None:
        conn, _ = server.accept()
        with conn:
            for _ in range(40):
                try:
                    conn.send(b"H")
                except OSError:
                    return  # the check gave up and closed: what we want
                time.sleep(0.1)

    threading.Thread(target=drip, daemon=True).start()
    woke = threading.Event()
    started = time.monotonic()
    check = Check(ReadyCheck("http", url=f"http://127.0.0.1:{port}/"), 0.5, started, wake=woke.set)
    assert woke.wait(30)  # the thread ended on its own deadline and woke the loop
    verdict = check.poll(time.monotonic())
    assert verdict is not None and not verdict.ok and "no answer within 0.5s" in verdict.error
    assert time.monotonic() - started < 3.5  # the dripping server would have held it 4 s and more
    server.close()


def test_a_command_check_is_killed_at_its_deadline_and_reaped_by_its_owner() -> None:
    now = time.monotonic()
    check = Check(ReadyCheck("command", argv=("sleep", "60")), 0.2, now)
    assert check.pid is not None and check.poll(now) is None
    pid = check.pid
    verdict = check.poll(now + 0.3)  # past the deadline: killed with its group
    assert verdict is not None and not verdict.ok and "no answer within 0.2s" in verdict.error
    _, status = os.waitpid(pid, 0)   # the supervisor's waitpid(-1) would collect it
    check.reaped(status)
    assert check.pid is None and check.poll(now + 1) == verdict
    ok = Check(ReadyCheck("command", argv=("true",)), 5.0, time.monotonic())
    assert ok.pid is not None
    ok.reaped(os.waitpid(ok.pid, 0)[1])
    assert wait_for(lambda: ok.poll(time.monotonic())).ok
