"""The HTTP health gate: URL parsing, the status line, and a host that goes back only once it serves
(through the MockConnector's sessions, which have no SSH transport, so the GET goes to a real local
server directly; the direct-tcpip path is in test_operator_day.py against a real sshd)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from imageserving_fleet.errors import UsageError
from imageserving_fleet.fleet.hooks import Hooks
from imageserving_fleet.fleet.httpgate import GateUrl, ask_once, parse_gate_url, parse_status_line
from imageserving_fleet.fleet.results import Result
from tests.fleet.fleetlab import free_port
from tests.fleet.test_rolling import Journal, run_restart


@pytest.mark.parametrize(("text", "url"), [
    ("http://127.0.0.1:8080/healthz", GateUrl("http://127.0.0.1:8080/healthz", "127.0.0.1", 8080, "/healthz")),
    ("http://localhost", GateUrl("http://localhost", "localhost", 80, "/")),
    (" http://[::1]:81/a?b=1 ", GateUrl("http://[::1]:81/a?b=1", "::1", 81, "/a?b=1")),
])
def test_parse_gate_url(text: str, url: GateUrl) -> None:
    assert parse_gate_url(text) == url


@pytest.mark.parametrize("text", ["https://h/", "127.0.0.1:8080", "http://", "http://h:notaport/", "ftp://h/"])
def test_bad_gate_url_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--gate-http"):
        parse_gate_url(text)


@pytest.mark.parametrize(("head", "status"), [(b"HTTP/1.0 200 OK\r\n", 200), (b"HTTP/1.1 503 Busy\r\nX: y", 503),
                                              (b"HTTP/1.1 204\n", 204)])
def test_status_line(head: bytes, status: int) -> None:
    assert parse_status_line(head) == status


@pytest.mark.parametrize("head", [b"", b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 abc\r\n"])
def test_not_http(head: bytes) -> None:
    with pytest.raises(ValueError):
        parse_status_line(head)


class Warming(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first `cold` requests, then 200, and journals each answer."""

    cold = 3
    journal: Journal | None = None
    count = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        cls = type(self)
        cls.count += 1
        code = 503 if cls.count <= cls.cold else 200
        if cls.journal is not None:
            cls.journal.add(f"http {code} -")
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, type[Warming]]]:
    handler = type("H", (Warming,), {"count": 0})
    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield port, handler
    httpd.shutdown()
    httpd.server_close()


class NoTransport:
    transport = None


def test_ask_once(server: tuple[int, type[Warming]]) -> None:
    port, handler = server
    handler.cold = 1
    url = parse_gate_url(f"http://127.0.0.1:{port}/healthz")
    assert ask_once(NoTransport(), url, 5.0) == f"GET {url.text} answered 503"
    assert ask_once(NoTransport(), url, 5.0) is None
    closed = parse_gate_url(f"http://127.0.0.1:{free_port()}/")
    assert (ask_once(NoTransport(), closed, 5.0) or "").startswith(f"GET {closed.text}: cannot connect from the host")


def test_a_host_goes_back_only_once_it_serves(tmp_path: Path, server: tuple[int, type[Warming]]) -> None:
    port, handler = server
    journal = Journal(tmp_path / "events")
    handler.cold, handler.journal = 3, journal
    url = parse_gate_url(f"http://127.0.0.1:{port}/healthz")
    results = run_restart(journal, ["h1"], "1", Hooks(after=journal.hook("after")), gate=url)
    assert results[0].result == Result.OK
    assert [e.split()[0] + (" " + e.split()[1] if e.startswith("http") else "") for e in journal.events()] == [
        "restart", "http 503", "http 503", "http 503", "http 200", "after"]


def test_a_host_that_never_serves_fails_with_the_last_answer(tmp_path: Path, server: tuple[int, type[Warming]]
                                                             ) -> None:
    port, handler = server
    handler.cold = 10**9
    journal = Journal(tmp_path / "events")
    url = parse_gate_url(f"http://127.0.0.1:{port}/healthz")
    results = run_restart(journal, ["h1"], "1", Hooks(), gate=url, timeout=1.5)
    assert (results[0].result, results[0].reason) == (Result.FAILED, f"not serving: GET {url.text} answered 503")
