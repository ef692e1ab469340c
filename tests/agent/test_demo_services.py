"""Tests of the demo stack: each service runs as a real subprocess on a free loopback port.

Nothing is mocked: the services are started with ``python -m``, their ports passed through the same
environment variables the packaged demo.yaml uses, and spoken to over real sockets.
"""

from __future__ import annotations

import http.client
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from imageserving_fleet.agent.demo.imageserver import ImageCache, render_png

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "imageserving_fleet.agent.demo"
SVG_NS = "{http://www.w3.org/2000/svg}"
START_TIMEOUT = 60.0  # generous: CI machines are slow; the services themselves listen in milliseconds
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """Ask the kernel for a port nobody listens on (it stays free long enough for these tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        return int(next(line.split()[1] for line in handle if line.startswith("Threads:")))


@dataclass
class Service:
    """A demo service running as a subprocess, with the port it announced and its stderr log."""

    module: str
    proc: subprocess.Popen[str]
    port: int
    banner: str
    log: Path

    def stop(self) -> None:
        """Kill the process if it still runs; safe to call twice."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def launch(module: str, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``python -m imageserving_fleet.agent.demo.<module>`` with extra environment variables."""
    return launch_argv([sys.executable, "-m", f"{PACKAGE}.{module}", *args], env, log)


def launch_argv(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """Start ``argv`` with extra environment variables, the repository importable, stderr to ``log``."""
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    # stderr goes to a file: a pipe nobody reads would fill up with request logs and block the server.
    with log.open("w") as stderr:
        return subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, env=full_env, text=True
        )


def wait_for_banner(proc: subprocess.Popen[str], log: Path) -> str:
    """Return the service's "... listening on HOST:PORT" line, or fail with its stderr."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    line = proc.stdout.readline() if ready else ""
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        pytest.fail(f"no listen line (got {line!r}, exit {proc.returncode}); stderr:\n{log.read_text()}")
    return line.strip()


Spawn = Callable[..., Service]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start demo services for one test and kill whatever is left of them afterwards."""
    started: list[Service] = []

    def _spawn(module: str, env: dict[str, str], *args: str) -> Service:
        log = tmp_path / f"{module}-{len(started)}.log"
        proc = launch(module, env, log, *args)
        started.append(Service(module, proc, 0, "", log))
        banner = wait_for_banner(proc, log)
        service = Service(module, proc, int(banner.rsplit(":", 1)[1]), banner, log)
        started[-1] = service
        return service

    try:
        yield _spawn
    finally:
        for service in started:
            service.stop()


@dataclass
class Stack:
    """The three demo services, wired together by their port environment variables."""

    image: Service
    svg: Service
    platform: Service


def start_stack(spawn: Spawn) -> Stack:
    """Start is and svg, then ps pointed at them, exactly as demo.yaml wires them."""
    env = {
        "IMAGESERVING_IS_PORT": str(free_port()),
        "IMAGESERVING_SVG_PORT": str(free_port()),
        "IMAGESERVING_PS_PORT": str(free_port()),
    }
    image = spawn("imageserver", env)
    svg = spawn("svgserver", env)
    platform = spawn("platformserver", env)
    return Stack(image, svg, platform)


@pytest.fixture
def stack(spawn: Spawn) -> Stack:
    return start_stack(spawn)


class LineClient:
    """A client of the is/svg line protocol over one persistent connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")

    def ask(self, request: bytes) -> tuple[bytes, bytes]:
        """Send one request line; return the header line and, for OK, the body it announces."""
        self.sock.sendall(request + b"\n")
        header = self.reader.readline()
        body = b""
        if header.startswith(b"OK "):
            body = self.reader.read(int(header.split()[1]))
        return header, body

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def connect() -> Iterator[Callable[[int], LineClient]]:
    clients: list[LineClient] = []

    def _connect(port: int) -> LineClient:
        clients.append(LineClient(port))
        return clients[-1]

    try:
        yield _connect
    finally:
        for client in clients:
            client.close()


def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Make one HTTP request straight to the port (http.client: no proxy from the environment)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def parse_png(data: bytes) -> tuple[int, int]:
    """Check that ``data`` is a complete, CRC-correct 8-bit RGB PNG and return its (width, height)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(tag + payload) == crc, f"bad CRC in {tag!r}"
        chunks.append((tag, payload))
        pos += 12 + length
    assert pos == len(data)
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(b"".join(payload for tag, payload in chunks if tag == b"IDAT"))
    assert len(raw) == height * (1 + 3 * width)
    return width, height


def parse_svg(data: bytes) -> tuple[int, int, str]:
    """Parse an SVG document and return its (width, height, text shown)."""
    root = ElementTree.fromstring(data)
    assert root.tag == f"{SVG_NS}svg"
    text = root.find(f"{SVG_NS}text")
    assert text is not None
    return int(root.attrib["width"]), int(root.attrib["height"]), text.text or ""


# --------------------------------------------------------------------------- Image Server


def test_image_server_answers_ping(spawn: Spawn, connect: Callable[[int], LineClient]) -> None:
    service = spawn("imageserver", {"IMAGESERVING_IS_PORT": str(free_port())})
    assert service.banner == f"Image Server listening on 127.0.0.1:{service.port}"
    client = connect(service.port)
    assert client.ask(b"PING") == (b"PONG\n", b"")
    assert client.ask(b"ping") == (b"PONG\n", b"")


def test_image_server_renders_a_valid_png_of_the_announced_length(
    spawn: Spawn, connect: Callable[[int], LineClient]
) -> None:
    service = spawn("imageserver", {"IMAGESERVING_IS_PORT": str(free_port())})
    client = connect(service.port)
    header, body = client.ask(b"RENDER 64 48 products/red shoe")
    assert header == b"OK %d\n" % len(body)
    assert parse_png(body) == (64, 48)
    # Deterministic from the name (a second connection, served from the cache), different per name.
    assert connect(service.port).ask(b"RENDER 64 48 products/red shoe")[1] == body
    assert client.ask(b"RENDER 64 48 products/blue shoe")[1] != body


def test_image_server_renders_its_largest_image(spawn: Spawn, connect: Callable[[int], LineClient]) -> None:
    service = spawn("imageserver", {"IMAGESERVING_IS_PORT": str(free_port())})
    header, body = connect(service.port).ask(b"RENDER 2000 2000 big")
    assert header == b"OK %d\n" % len(body)
    assert parse_png(body) == (2000, 2000)


@pytest.mark.parametrize(
    "request_line",
    [
        b"HELLO",
        b"",
        b"PING extra",
        b"RENDER",
        b"RENDER 10 10",
        b"RENDER 10 10   ",
        b"RENDER ten 10 name",
        b"RENDER 0 10 name",
        b"RENDER 10 2001 name",
        b"RENDER -5 10 name",
        b"RENDER 10 10 tab\there",
        b"RENDER 10 10 \xff\xfe",
        b"RENDER 10 10 " + b"x" * 300,
    ],
)
def test_image_server_answers_err_and_keeps_the_connection(
    spawn: Spawn, connect: Callable[[int], LineClient], request_line: bytes
) -> None:
    service = spawn("imageserver", {"IMAGESERVING_IS_PORT": str(free_port())})
    client = connect(service.port)
    header, body = client.ask(request_line)
    assert header.startswith(b"ERR ") and header.endswith(b"\n") and len(header) > 5
    assert body == b""
    assert client.ask(b"PING") == (b"PONG\n", b"")


def test_image_server_refuses_an_overlong_line_and_closes(
    spawn: Spawn, connect: Callable[[int], LineClient]
) -> None:
    service = spawn("imageserver", {"IMAGESERVING_IS_PORT": str(free_port())})
    client = connect(service.port)
    header, _ = client.ask(b"RENDER 10 10 " + b"x" * 10_000)
    assert header.startswith(b"ERR request line longer than")
    assert client.reader.read() == b""  # closed by the server


def test_cli_port_wins_over_the_environment(spawn: Spawn, connect: Callable[[int], LineClient]) -> None:
    cli_port = free_port()
    service = spawn("imageserver", {"IMAGESERVING_IS_PORT": str(free_port())}, "--port", str(cli_port))
    assert service.port == cli_port
    assert connect(cli_port).ask(b"PING") == (b"PONG\n", b"")


def test_a_port_in_use_is_a_clear_failure(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        log = tmp_path / "is.log"
        proc = launch("imageserver", {"IMAGESERVING_IS_PORT": str(port)}, log)
        try:
            assert proc.wait(timeout=START_TIMEOUT) == 1
        finally:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
    assert f"cannot listen on 127.0.0.1:{port}" in log.read_text()


def test_a_bad_port_in_the_environment_is_a_usage_error(tmp_path: Path) -> None:
    log = tmp_path / "svg.log"
    proc = launch("svgserver", {"IMAGESERVING_SVG_PORT": "http"}, log)
    try:
        assert proc.wait(timeout=START_TIMEOUT) == 2
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert "IMAGESERVING_SVG_PORT" in log.read_text()


def test_image_cache_evicts_the_least_recently_used_beyond_its_byte_budget() -> None:
    cache = ImageCache(max_bytes=10, max_entries=100)
    cache.put((1, 1, "a"), b"aaaa")
    cache.put((1, 1, "b"), b"bbbb")
    assert cache.get((1, 1, "a")) == b"aaaa"  # now "b" is the least recently used
    cache.put((1, 1, "c"), b"cccc")
    assert cache.get((1, 1, "b")) is None
    assert cache.get((1, 1, "a")) == b"aaaa" and cache.get((1, 1, "c")) == b"cccc"
    assert cache.size_bytes == 8 and len(cache) == 2
    cache.put((1, 1, "huge"), b"x" * 11)  # larger than the whole budget: not cached, nothing evicted
    assert len(cache) == 2


def test_render_png_is_deterministic_and_valid_for_odd_sizes() -> None:
    for width, height in [(1, 1), (3, 7), (257, 13)]:
        image = render_png(width, height, "odd")
        assert parse_png(image) == (width, height)
        assert render_png(width, height, "odd") == image


# --------------------------------------------------------------------------- SVG server


def test_svg_server_answers_ping_and_renders_escaped_svg(
    spawn: Spawn, connect: Callable[[int], LineClient]
) -> None:
    service = spawn("svgserver", {"IMAGESERVING_SVG_PORT": str(free_port())})
    assert service.banner == f"SVG server listening on 127.0.0.1:{service.port}"
    client = connect(service.port)
    assert client.ask(b"PING") == (b"PONG\n", b"")
    text = 'Sale <50%> & "more" \u00e9t\u00e9'
    header, body = client.ask(b"RENDER 300 120 " + text.encode())
    assert header == b"OK %d\n" % len(body)
    assert parse_svg(body) == (300, 120, text)
    header, body = client.ask(b"RENDER 300 0 nope")
    assert header.startswith(b"ERR height") and body == b""


# --------------------------------------------------------------------------- Platform Server


def test_platform_server_lists_its_endpoints(stack: Stack) -> None:
    assert stack.platform.banner == f"Platform Server listening on 127.0.0.1:{stack.platform.port}"
    status, headers, body = http_get(stack.platform.port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    for endpoint in (b"/is/image/", b"/is/agm/", b"/is/content/", b"/healthz"):
        assert endpoint in body


def test_platform_server_is_healthy_when_both_backends_answer(stack: Stack) -> None:
    status, _, body = http_get(stack.platform.port, "/healthz")
    assert (status, body.strip()) == (200, b"ok")


def test_platform_server_forwards_images_to_the_image_server(stack: Stack) -> None:
    status, headers, body = http_get(stack.platform.port, "/is/image/products/red%20shoe?wid=120&hei=80")
    assert status == 200 and headers["content-type"] == "image/png"
    assert int(headers["content-length"]) == len(body)
    assert parse_png(body) == (120, 80)
    # The same bytes as asking the Image Server directly: ps forwards, it does not re-encode.
    direct = LineClient(stack.image.port)
    try:
        assert direct.ask(b"RENDER 120 80 products/red shoe")[1] == body
    finally:
        direct.close()
    _, _, default = http_get(stack.platform.port, "/is/image/sample")
    assert parse_png(default) == (400, 400)
    _, _, square = http_get(stack.platform.port, "/is/image/sample?WID=50")
    assert parse_png(square) == (50, 50)


def test_platform_server_forwards_svg_requests_to_the_svg_server(stack: Stack) -> None:
    status, headers, body = http_get(stack.platform.port, "/is/agm/logo?wid=200&hei=100")
    assert status == 200 and headers["content-type"] == "image/svg+xml"
    assert parse_svg(body) == (200, 100, "logo")
    status, _, body = http_get(stack.platform.port, "/is/content/Hello%20World.svg?wid=320&hei=90")
    assert status == 200 and parse_svg(body) == (320, 90, "Hello World")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/nothing/here", 404),
        ("/is/image/", 404),
        ("/is/content/not-svg.txt", 404),
        ("/is/image/x?wid=0", 400),
        ("/is/image/x?wid=abc", 400),
        ("/is/image/x?hei=5000", 400),
        ("/is/image/line%0Abreak", 400),
        ("/is/image/%FF", 400),
    ],
)
def test_platform_server_refuses_bad_requests(stack: Stack, path: str, expected: int) -> None:
    status, headers, body = http_get(stack.platform.port, path)
    assert status == expected and headers["content-type"].startswith("text/plain") and body


def test_platform_server_answers_head_without_a_body(stack: Stack) -> None:
    status, headers, body = http_get(stack.platform.port, "/is/image/x?wid=10&hei=10", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_platform_server_reports_a_dead_image_server(stack: Stack) -> None:
    stack.image.proc.kill()
    stack.image.proc.wait(timeout=STOP_TIMEOUT)
    status, _, body = http_get(stack.platform.port, "/healthz")
    assert status == 503 and b"Image Server" in body and b"svg" not in body.lower()
    status, _, body = http_get(stack.platform.port, "/is/image/x?wid=10&hei=10")
    assert status == 502 and b"Image Server" in body
    # The other backend is unaffected.
    status, _, _ = http_get(stack.platform.port, "/is/agm/x?wid=10&hei=10")
    assert status == 200


def test_platform_server_reports_a_dead_svg_server(stack: Stack) -> None:
    stack.svg.proc.kill()
    stack.svg.proc.wait(timeout=STOP_TIMEOUT)
    status, _, body = http_get(stack.platform.port, "/healthz")
    assert status == 503 and b"SVG server" in body
    status, _, _ = http_get(stack.platform.port, "/is/content/x.svg")
    assert status == 502


# --------------------------------------------------------------------------- shutdown


@pytest.mark.parametrize(
    ("module", "env_name"),
    [
        ("imageserver", "IMAGESERVING_IS_PORT"),
        ("svgserver", "IMAGESERVING_SVG_PORT"),
        ("platformserver", "IMAGESERVING_PS_PORT"),
    ],
)
def test_sigterm_exits_0_promptly_even_with_an_idle_client(spawn: Spawn, module: str, env_name: str) -> None:
    service = spawn(module, {env_name: str(free_port())})
    # A connected client that never sends anything must not hold the shutdown for its read timeout.
    before = threads(service.proc.pid)
    with socket.create_connection(("127.0.0.1", service.port), timeout=10):
        deadline = time.monotonic() + START_TIMEOUT
        while threads(service.proc.pid) == before:  # the server accepted it: a handler thread waits on it
            assert time.monotonic() < deadline, "the server never accepted the connection"
            time.sleep(0.02)
        started = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(timeout=STOP_TIMEOUT) == 0
        assert time.monotonic() - started < 5.0  # not held for the handler's read timeout (10 s or more)
    log = service.log.read_text()
    assert "SIGTERM received" in log and "stopped" in log
    # And the port is free again at once (SO_REUSEADDR on the next bind).
    again = spawn(module, {env_name: str(service.port)})
    assert again.port == service.port


# --------------------------------------------------------------------------- the configurations

DEMO_YAML = REPO / "imageserving_fleet" / "agent" / "demo" / "demo.yaml"
SCENE7_YAML = REPO / "agent" / "scene7.yaml"
SPEC_KEYS = {
    "description", "command", "cwd", "env", "user", "start_priority", "ready", "start_delay",
    "ready_timeout", "stop_signal", "stop_timeout", "restart", "start_retries", "backoff", "max_memory",
    "health", "logs",
}  # fmt: skip


def expand(value: str, env: dict[str, str]) -> str:
    """Do what the config loader does to a value: ${PYTHON} is this interpreter, ${VAR:-default}."""
    value = value.replace("${PYTHON}", sys.executable)

    def lookup(match: re.Match[str]) -> str:
        return env.get(match[1]) or (match[2] or "")

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lookup, value)


@pytest.mark.parametrize("path", [DEMO_YAML, SCENE7_YAML], ids=["demo", "scene7"])
def test_configurations_describe_the_three_components_with_documented_keys(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    assert set(config) <= {"supervisor", "components"}
    components = config["components"]
    assert set(components) == {"is", "svg", "ps"}
    for cid, component in components.items():
        assert set(component) <= SPEC_KEYS, cid
        assert isinstance(component["command"], list) and all(
            isinstance(a, str) for a in component["command"]
        )
    assert [components[c]["start_priority"] for c in ("is", "svg", "ps")] == [1, 1, 2]


def test_demo_yaml_starts_a_stack_that_passes_its_own_ready_checks(tmp_path: Path) -> None:
    ports = {name: str(free_port()) for name in ("IS", "SVG", "PS")}
    host_env = {f"IMAGESERVING_{name}_PORT": port for name, port in ports.items()}
    components = yaml.safe_load(DEMO_YAML.read_text())["components"]
    procs: list[subprocess.Popen[str]] = []
    try:
        for cid in sorted(components, key=lambda c: components[c]["start_priority"]):
            component = components[cid]
            argv = [expand(arg, host_env) for arg in component["command"]]
            env = {key: expand(value, host_env) for key, value in component["env"].items()}
            assert env == {k: v for k, v in host_env.items() if k in component["env"]}
            log = tmp_path / f"{cid}.log"
            procs.append(launch_argv(argv, env, log))
            wait_for_banner(procs[-1], log)
            ready = {kind: expand(target, host_env) for kind, target in component["ready"].items()}
            if "tcp" in ready:
                host, port = ready["tcp"].rsplit(":", 1)
                socket.create_connection((host, int(port)), timeout=5).close()
            else:
                url = ready["http"]
                assert url.startswith(f"http://127.0.0.1:{ports['PS']}/")
                assert http_get(int(ports["PS"]), url.split(ports["PS"], 1)[1])[0] == 200
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


def test_the_packaged_systemd_unit_is_the_documented_one() -> None:
    packaged = REPO / "imageserving_fleet" / "agent" / "imageserving.service"
    assert packaged.read_text() == (REPO / "agent" / "imageserving.service").read_text()
