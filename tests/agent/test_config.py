"""The agent's YAML configuration: shipped files load, defaults match SPEC §2, errors name file:line key."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imageserving_fleet.agent.config import (
    AgentConfig,
    Backoff,
    ComponentConfig,
    ReadyCheck,
    from_dict,
    load_config,
    lookup,
    packaged_default,
    parse_config,
    resolve_path,
    to_dict,
    yamlfile,
)
from imageserving_fleet.errors import ConfigError

SCENE7 = Path(__file__).resolve().parents[2] / "agent" / "scene7.yaml"
NAME = "agent.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Configs read ${VAR}: no IMAGESERVING_*, PYTHON or JAVA_HOME from the test runner's environment."""
    import os

    for name in list(os.environ):
        if name.startswith("IMAGESERVING_") or name in ("PYTHON", "JAVA_HOME"):
            monkeypatch.delenv(name)
    yield


def one(body: str = "", cid: str = "is") -> str:
    """A config with one component whose command is on line 3; `body` lines start at line 4."""
    return f"components:\n  {cid}:\n    command: [/bin/prog, --flag]\n{body}"


def parse(text: str) -> AgentConfig:
    return parse_config(text, NAME)


# ------------------------------------------------------------- shipped files


def test_packaged_demo_loads() -> None:
    cfg = load_config(packaged_default())
    assert cfg.path == str(packaged_default())
    assert cfg.ids == ("is", "svg", "ps")
    assert cfg.priorities() == [["is", "svg"], ["ps"]]
    assert cfg.log_max_bytes == 10 * 2**20 and cfg.log_backups == 5
    is_, svg, ps = cfg.components
    assert is_.command == (sys.executable, "-m", "imageserving_fleet.agent.demo.imageserver")
    assert is_.ready == ReadyCheck("tcp", host="127.0.0.1", port=27345)
    assert is_.env == {"IMAGESERVING_IS_PORT": "27345"}
    assert is_.start_delay == 0.2 and is_.ready_timeout == 20.0 and is_.stop_timeout == 10.0
    assert is_.backoff == Backoff(initial=1.0, max=30.0, reset_after=60.0)
    assert is_.max_memory == 512 * 2**20
    assert svg.ready == ReadyCheck("tcp", host="127.0.0.1", port=27346)
    assert svg.max_memory is None
    assert ps.ready == ReadyCheck("http", url="http://127.0.0.1:8080/healthz")
    assert ps.env == {
        "IMAGESERVING_PS_PORT": "8080",
        "IMAGESERVING_IS_PORT": "27345",
        "IMAGESERVING_SVG_PORT": "27346",
    }
    assert ps.start_priority == 2


def test_packaged_demo_ports_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGESERVING_PS_PORT", "18080")
    monkeypatch.setenv("IMAGESERVING_IS_PORT", "")  # empty: `:-` falls back to the default
    cfg = load_config(packaged_default())
    assert cfg.component("ps").ready == ReadyCheck("http", url="http://127.0.0.1:18080/healthz")
    assert cfg.component("ps").env["IMAGESERVING_PS_PORT"] == "18080"
    assert cfg.component("is").ready == ReadyCheck("tcp", host="127.0.0.1", port=27345)


def test_python_variable_is_the_agents_interpreter_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    text = one().replace("[/bin/prog, --flag]", '["${PYTHON}", "-m", "x"]')
    assert parse(text).components[0].command == (sys.executable, "-m", "x")
    monkeypatch.setenv("PYTHON", "/opt/py/bin/python3")
    assert parse(text).components[0].command == ("/opt/py/bin/python3", "-m", "x")


def test_scene7_example_loads() -> None:
    cfg = load_config(SCENE7)
    assert cfg.ids == ("is", "svg", "ps")
    assert cfg.priorities() == [["is", "svg"], ["ps"]]
    assert cfg.log_max_bytes == 50 * 2**20 and cfg.log_backups == 10
    is_ = cfg.component("is")
    assert is_.command == ("/usr/local/scene7/ImageServing/bin64/ImageServer",)
    assert is_.cwd == "/usr/local/scene7/ImageServing"
    assert is_.user == "scene7"
    assert is_.restart == "always"
    assert is_.max_memory == 8 * 2**30
    assert is_.ready_timeout == 120.0 and is_.stop_timeout == 60.0 and is_.start_delay == 5.0
    assert (
        cfg.component("svg").command[0] == "/usr/local/scene7/ImageServing/jre/bin/java"
    )  # ${JAVA_HOME:-...}
    assert cfg.component("svg").max_memory == 2 * 2**30
    ps = cfg.component("ps")
    assert ps.ready == ReadyCheck("http", url="http://127.0.0.1:8080/is/image?req=props")
    assert ps.env["CATALINA_OPTS"].startswith("-Xmx2048m -Djava.awt.headless=true")
    assert "\n" not in ps.env["CATALINA_OPTS"]  # folded scalar: one line of options
    assert ps.ready_timeout == 300.0


def test_scene7_java_home_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", "/usr/lib/jvm/java-17")
    cfg = load_config(SCENE7)
    assert cfg.component("svg").command[0] == "/usr/lib/jvm/java-17/bin/java"
    assert cfg.component("ps").env["JAVA_HOME"] == "/usr/lib/jvm/java-17"


# ----------------------------------------------------------------- defaults


def test_defaults_match_the_spec() -> None:
    cfg = parse(one())
    assert cfg.path == NAME
    assert cfg.log_max_bytes == 10 * 2**20
    assert cfg.log_backups == 5
    (comp,) = cfg.components
    assert comp == ComponentConfig(
        id="is",
        command=("/bin/prog", "--flag"),
        description="is",
        cwd=None,
        env={},
        user=None,
        start_priority=1,
        ready=None,
        start_delay=5.0,
        ready_timeout=60.0,
        stop_signal=signal.SIGTERM,
        stop_timeout=60.0,
        restart="on-failure",
        start_retries=5,
        backoff=Backoff(initial=1.0, max=60.0, reset_after=60.0),
        max_memory=None,
    )


def test_dataclass_defaults_equal_parsed_defaults() -> None:
    # Built directly (as the state-machine tests do) or parsed, a bare component is the same.
    assert parse(one()).components[0] == ComponentConfig(
        id="is", command=("/bin/prog", "--flag"), description="is"
    )


def test_every_setting_is_read() -> None:
    body = """\
    description: Image Server
    cwd: /srv/is
    env: {LD_LIBRARY_PATH: /srv/is/lib, N: 3}
    user: scene7
    start_priority: 3
    ready: {command: [/bin/check, "--port", 27345]}
    start_delay: 500ms
    ready_timeout: 2m
    stop_signal: SIGINT
    stop_timeout: 1.5s
    restart: never
    start_retries: 2
    backoff: {initial: 250ms, max: 10s, reset_after: 1h}
    max_memory: 1.5GiB
supervisor:
  log_max_bytes: 512KiB
  log_backups: 0
"""
    cfg = parse(one(body))
    comp = cfg.components[0]
    assert comp.description == "Image Server"
    assert comp.cwd == "/srv/is"
    assert comp.env == {"LD_LIBRARY_PATH": "/srv/is/lib", "N": "3"}
    assert comp.user == "scene7"
    assert comp.start_priority == 3
    assert comp.ready == ReadyCheck("command", argv=("/bin/check", "--port", "27345"))
    assert comp.start_delay == 0.5 and comp.ready_timeout == 120.0 and comp.stop_timeout == 1.5
    assert comp.stop_signal == signal.SIGINT
    assert comp.restart == "never" and comp.start_retries == 2
    assert comp.backoff == Backoff(initial=0.25, max=10.0, reset_after=3600.0)
    assert comp.max_memory == 3 * 2**29
    assert cfg.log_max_bytes == 512 * 1024 and cfg.log_backups == 0


@pytest.mark.parametrize(
    ("ready", "check"),
    [
        ('{tcp: "127.0.0.1:27345"}', ReadyCheck("tcp", host="127.0.0.1", port=27345)),
        ('{tcp: "localhost:1"}', ReadyCheck("tcp", host="localhost", port=1)),
        ('{tcp: "[::1]:65535"}', ReadyCheck("tcp", host="::1", port=65535)),
        ('{http: "http://127.0.0.1:8080/healthz"}', ReadyCheck("http", url="http://127.0.0.1:8080/healthz")),
        ('{http: "https://is01/ping"}', ReadyCheck("http", url="https://is01/ping")),
        ("{command: [/bin/true]}", ReadyCheck("command", argv=("/bin/true",))),
        ("null", None),
        ("", None),
    ],
)
def test_ready_checks(ready: str, check: ReadyCheck | None) -> None:
    assert parse(one(f"    ready: {ready}\n")).components[0].ready == check


@pytest.mark.parametrize(
    ("value", "signo"),
    [
        ("TERM", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("int", signal.SIGINT),
        ("QUIT", signal.SIGQUIT),
        ("HUP", signal.SIGHUP),
        ("KILL", signal.SIGKILL),
        ("sigusr1", signal.SIGUSR1),
    ],
)
def test_stop_signals(value: str, signo: int) -> None:
    assert parse(one(f"    stop_signal: {value}\n")).components[0].stop_signal == signo


@pytest.mark.parametrize("policy", ["always", "on-failure", "never"])
def test_restart_policies(policy: str) -> None:
    assert parse(one(f"    restart: {policy}\n")).components[0].restart == policy


@pytest.mark.parametrize("cid", ["is", "ps", "svg", "a", "is-2", "image_server", "x" * 32, "a1"])
def test_valid_ids(cid: str) -> None:
    assert parse(one(cid=cid)).ids == (cid,)


def test_variables_in_numbers_durations_and_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGESERVING_T_PRIO", "4")
    body = """\
    start_priority: "${IMAGESERVING_T_PRIO}"
    start_retries: "${IMAGESERVING_T_UNSET:-7}"
    stop_timeout: "${IMAGESERVING_T_UNSET:-90s}"
    max_memory: "${IMAGESERVING_T_UNSET:-2GiB}"
    cwd: "${IMAGESERVING_T_UNSET-/srv}/is"
"""
    comp = parse(one(body)).components[0]
    assert comp.start_priority == 4
    assert comp.start_retries == 7
    assert comp.stop_timeout == 90.0
    assert comp.max_memory == 2 * 2**30
    assert comp.cwd == "/srv/is"


# ------------------------------------------------------------ priorities


def _cfg(*prios: tuple[str, int]) -> AgentConfig:
    return AgentConfig(
        path="x", components=tuple(ComponentConfig(id=c, command=("x",), start_priority=p) for c, p in prios)
    )


@pytest.mark.parametrize(
    ("prios", "groups"),
    [
        ((("is", 1), ("svg", 1), ("ps", 2)), [["is", "svg"], ["ps"]]),
        ((("ps", 2), ("is", 1), ("svg", 1)), [["is", "svg"], ["ps"]]),  # file order within a level
        ((("a", 10), ("b", 0), ("c", 5)), [["b"], ["c"], ["a"]]),
        ((("a", 1), ("b", 1), ("c", 1)), [["a", "b", "c"]]),
        ((("a", 3),), [["a"]]),
    ],
)
def test_priorities(prios: tuple[tuple[str, int], ...], groups: list[list[str]]) -> None:
    assert _cfg(*prios).priorities() == groups


def test_component_lookup() -> None:
    cfg = _cfg(("is", 1), ("ps", 2))
    assert cfg.component("ps").start_priority == 2
    with pytest.raises(KeyError):
        cfg.component("svg")


# ----------------------------------------------------- to_dict / from_dict


@pytest.mark.parametrize("path", [packaged_default(), SCENE7], ids=["demo", "scene7"])
def test_to_dict_from_dict_round_trip(path: Path) -> None:
    cfg = load_config(path)
    assert from_dict(to_dict(cfg)) == cfg
    # the supervisor receives it as JSON: tuples become lists on the way
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_round_trip_with_command_ready_check() -> None:
    cfg = parse(one("    ready: {command: [/bin/check, -q]}\n    max_memory: 1GiB\n"))
    back = from_dict(json.loads(json.dumps(to_dict(cfg))))
    assert back == cfg
    assert back.components[0].ready is not None and back.components[0].ready.argv == ("/bin/check", "-q")


# ------------------------------------------------------------------ lookup


def test_resolve_path_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(lookup, "SYSTEM_CONFIG", str(tmp_path / "etc.yaml"))
    assert resolve_path(None) == packaged_default()
    (tmp_path / "etc.yaml").write_text(one())
    assert resolve_path(None) == tmp_path / "etc.yaml"
    monkeypatch.setenv("IMAGESERVING_CONFIG", "/from/env.yaml")
    assert resolve_path(None) == Path("/from/env.yaml")
    assert resolve_path("/explicit.yaml") == Path("/explicit.yaml")


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.path == str(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(info.value)


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(one("    description: caf\xe9\n").encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8") as info:
        load_config(path)
    assert info.value.path == str(path)


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(one("    restart: sometimes\n"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:4: components.is.restart: ")


# ------------------------------------------------------------------ errors

# Errors inside component `is`: (id, settings lines under `is:`, line, key under components.is, fragment).
# one() puts `command` on line 3, so the first settings line is line 4.
COMPONENT_ERRORS: list[tuple[str, str, int, str, str]] = [
    ("unknown component key", "restart_policy: always", 4, "restart_policy", "unknown key"),
    ("unknown backoff key", "backoff:\n  initial: 1s\n  maximum: 5s", 6, "backoff.maximum", "unknown key"),
    ("unknown ready kind", "ready: {udp: 'h:1'}", 4, "ready.udp", "unknown key"),
    ("bad duration", "start_delay: 5x", 4, "start_delay", "duration"),
    ("duration with a word unit", "stop_timeout: 5 seconds", 4, "stop_timeout", "duration"),
    ("negative duration", "ready_timeout: -1", 4, "ready_timeout", "negative"),
    ("bool duration", "stop_timeout: yes", 4, "stop_timeout", "duration"),
    ("bad backoff duration", "backoff: {initial: 1x}", 4, "backoff.initial", "duration"),
    ("bad size", "max_memory: 2G", 4, "max_memory", "size"),
    ("negative size", "max_memory: -1", 4, "max_memory", "negative"),
    ("unknown signal", "stop_signal: TERMINATE", 4, "stop_signal", "unknown signal"),
    ("numeric signal", "stop_signal: 15", 4, "stop_signal", "unknown signal"),
    ("bad restart policy", "restart: sometimes", 4, "restart", "on-failure"),
    ("restart policy as bool", "restart: yes", 4, "restart", "on-failure"),
    ("start_retries zero", "start_retries: 0", 4, "start_retries", ">= 1"),
    ("start_priority negative", "start_priority: -1", 4, "start_priority", ">= 0"),
    ("start_priority a float", "start_priority: 1.5", 4, "start_priority", "whole number"),
    ("start_priority a bool", "start_priority: true", 4, "start_priority", "whole number"),
    ("ready two kinds", "ready: {tcp: 'h:1', http: 'http://x/'}", 4, "ready", "exactly one"),
    ("ready two kinds, block", "ready:\n  tcp: 'h:1'\n  http: 'http://x/'", 4, "ready", "exactly one"),
    ("ready empty", "ready: {}", 4, "ready", "exactly one"),
    ("ready a string", "ready: tcp", 4, "ready", "expected a mapping"),
    ("tcp without port", "ready: {tcp: localhost}", 4, "ready.tcp", "HOST:PORT"),
    ("tcp without host", "ready: {tcp: ':80'}", 4, "ready.tcp", "HOST:PORT"),
    ("tcp port zero", "ready: {tcp: 'h:0'}", 4, "ready.tcp", "HOST:PORT"),
    ("tcp port too big", "ready: {tcp: 'h:65536'}", 4, "ready.tcp", "HOST:PORT"),
    ("tcp port not a number", "ready: {tcp: 'h:http'}", 4, "ready.tcp", "HOST:PORT"),
    ("tcp a list", "ready: {tcp: [h, 80]}", 4, "ready.tcp", "expected text"),
    ("http not a URL", "ready: {http: '127.0.0.1:8080/healthz'}", 4, "ready.http", "http://"),
    ("http other scheme", "ready: {http: 'ftp://is01/'}", 4, "ready.http", "http://"),
    ("ready command a string", "ready: {command: '/bin/check -q'}", 4, "ready.command", "argv list"),
    ("unset variable in cwd", "cwd: ${IMAGESERVING_T_UNSET}", 4, "cwd", "IMAGESERVING_T_UNSET is not set"),
    ("unset variable in env", "env:\n  A: x\n  B: ${IMAGESERVING_T_UNSET}", 6, "env.B", "not set"),
    ("unset variable in a duration", "stop_timeout: ${IMAGESERVING_T_X}", 4, "stop_timeout", "not set"),
    ("unset variable in ready", "ready: {tcp: 'h:${IMAGESERVING_T_UNSET}'}", 4, "ready.tcp", "not set"),
    ("env value a list", "env: {A: [1, 2]}", 4, "env.A", "expected text"),
    ("description a list", "description: [a]", 4, "description", "expected text"),
]


def settings_block(lines: str) -> str:
    return "".join(f"    {line}\n" for line in lines.split("\n"))


@pytest.mark.parametrize(
    ("body", "line", "key", "fragment"),
    [e[1:] for e in COMPONENT_ERRORS],
    ids=[e[0] for e in COMPONENT_ERRORS],
)
def test_component_errors_name_file_line_and_key(body: str, line: int, key: str, fragment: str) -> None:
    check_error(one(settings_block(body)), line, f"components.is.{key}", fragment)


# Everything else: (id, whole text, line, key, fragment).
ERRORS: list[tuple[str, str, int | None, str | None, str]] = [
    ("broken YAML: mapping value", one("    cwd: x: y\n"), 4, None, "invalid YAML"),
    ("broken YAML: tab", one("\tcwd: x\n"), 4, None, "invalid YAML"),
    ("broken YAML: bad indentation", one("  - x\n"), 4, None, "invalid YAML"),
    ("broken YAML: unclosed quote", one('    cwd: "x\n    user: y\n'), 6, None, "invalid YAML"),
    ("broken YAML: two documents", one() + "---\nx: 1\n", 4, None, "invalid YAML"),
    ("top level a list", "- components\n", 1, None, "expected a mapping"),
    ("top level a scalar", "hello\n", 1, None, "expected a mapping"),
    ("unknown top-level key", one() + "supervisr: {}\n", 4, "supervisr", "unknown key"),
    ("unknown supervisor key", "supervisor:\n  log_backup: 5\n" + one(), 2, "supervisor.log_backup",
     "unknown key"),
    ("bad log size", "supervisor:\n  log_max_bytes: 10XB\n" + one(), 2, "supervisor.log_max_bytes", "size"),
    ("log size too small", "supervisor: {log_max_bytes: 1KiB}\n" + one(), 1, "supervisor.log_max_bytes",
     "at least 4KiB"),
    ("log backups a word", "supervisor: {log_backups: five}\n" + one(), 1, "supervisor.log_backups", "whole"),
    ("log backups negative", "supervisor: {log_backups: -1}\n" + one(), 1, "supervisor.log_backups", "whole"),
    ("component not a mapping", "components:\n  is: [a, b]\n", 2, "components.is", "expected a mapping"),
    ("command as a string", "components:\n  is:\n    command: /bin/prog --flag\n", 3, "components.is.command",
     "shell string"),
    ("command missing", "components:\n  is:\n    cwd: /\n", 2, "components.is.command", "argv list"),
    ("command empty", "components:\n  is:\n    command: []\n", 3, "components.is.command", "argv list"),
    ("command item a mapping", "components:\n  is:\n    command: [a, {b: c}]\n", 3, "components.is.command.1",
     "expected text"),
    ("command item a bool", "components:\n  is:\n    command: [a, yes]\n", 3, "components.is.command.1",
     "expected text"),
    ("unset variable in command", "components:\n  is:\n    command: [a, '${IMAGESERVING_T_UNSET}']\n", 3,
     "components.is.command.1", "IMAGESERVING_T_UNSET is not set"),
    ("id with uppercase", one(cid="IS"), 2, "components.IS", "lowercase"),
    ("id with a space", one(cid='"i s"'), 2, "components.i s", "lowercase"),
    ("id starting with a digit", one(cid="1is"), 2, "components.1is", "lowercase"),
    ("id too long", one(cid="x" * 33), 2, "components." + "x" * 33, "at most 32"),
    ("id a number", one(cid="7"), 2, "components.7", "lowercase"),
    ("empty components", "components: {}\n", 1, "components", "at least one"),
    ("null components", "components:\n", 1, "components", "at least one"),
    ("components a list", "components: [is, ps]\n", 1, "components", "at least one"),
    ("no components", "supervisor: {log_backups: 1}\n", 1, "components", "at least one"),
    ("second component wrong", one() + "  ps:\n    command: [x]\n    restart: sometimes\n", 6,
     "components.ps.restart", "on-failure"),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors_name_file_line_and_key(text: str, line: int | None, key: str | None, fragment: str) -> None:
    check_error(text, line, key, fragment)


def check_error(text: str, line: int | None, key: str | None, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    err = info.value
    assert (err.path, err.line, err.key) == (NAME, line, key)
    prefix = f"{NAME}:{line}" + (f": {key}" if key else "")
    assert str(err).startswith(prefix + ": "), str(err)
    assert fragment in str(err)


def test_empty_file_names_file_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse("")
    assert (info.value.path, info.value.key) == (NAME, "components")


def test_unknown_key_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="expected one of: backoff, command, cwd, description"):
        parse(one("    bogus: 1\n"))


# ------------------------------------------ regressions (bugs these tests found, now fixed)

# Each of these let an exception other than ConfigError out of parse_config: `imageserving config
# check` printed a traceback instead of "file:line: key: message" and exit 6.
ESCAPES: list[tuple[str, str, str]] = [
    (
        "env a list: config.py:241 calls .keys() before checking it is a mapping",
        one("    env: [A, B]\n"),
        "components.is.env",
    ),
    (
        "env a string: config.py:241 calls .keys() before checking it is a mapping",
        one("    env: A=1\n"),
        "components.is.env",
    ),
    (
        "integer '--5': config.py:210 lstrip('-') then int() raises ValueError",
        one("    start_priority: '--5'\n"),
        "components.is.start_priority",
    ),
    (
        "integer '\u00b2': config.py:210 str.isdigit() accepts non-ASCII digits int() refuses",
        one("    start_retries: '\u00b2'\n"),
        "components.is.start_retries",
    ),
    (
        "tcp port '\u00b2': config.py:282 str.isdigit() accepts non-ASCII digits int() refuses",
        one("    ready: {tcp: 'h:\u00b2'}\n"),
        "components.is.ready.tcp",
    ),
    (
        "huge size: units.py:49 int(float('9'*400)) raises OverflowError",
        one("    max_memory: '" + "9" * 400 + "MiB'\n"),
        "components.is.max_memory",
    ),
    (
        "invalid date: config.py:140 yaml.load raises ValueError, not a YAMLError",
        one("    description: 2001-13-45\n"),
        "components.is.description",
    ),
    (
        "5000-digit integer: config.py:140 yaml.load hits the int-string limit (ValueError)",
        one("    start_priority: " + "9" * 5000 + "\n"),
        "components.is.start_priority",
    ),
    (
        "recursive alias: config.py:153 _index_lines recurses forever (RecursionError)",
        "components: &a [*a]\n",
        "components",
    ),
    (
        "recursive mapping alias: config.py:153 _index_lines recurses forever (RecursionError)",
        "components: &a {is: *a}\n",
        "components",
    ),
]


@pytest.mark.parametrize(("text", "key"), [e[1:] for e in ESCAPES], ids=[e[0].split(":")[0] for e in ESCAPES])
def test_only_config_error_escapes(text: str, key: str) -> None:
    try:
        parse(text)
    except ConfigError as err:
        assert err.path == NAME
        assert err.key is None or err.key.startswith(key)
    else:
        raise AssertionError("accepted")


def test_aliases_are_indexed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    original = yamlfile._index_lines

    def counting(*args: object) -> None:
        nonlocal calls
        calls += 1
        original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(yamlfile, "_index_lines", counting)
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 5)]
    with pytest.raises(ConfigError, match="unknown key"):
        parse("\n".join(lines) + "\n" + one())
    assert calls < 1000  # 5 levels of 10 shared nodes: ~60 nodes, not 111,111 visits


def test_variables_in_restart_and_stop_signal() -> None:
    comp = parse(
        one("    restart: ${IMAGESERVING_T_UNSET:-always}\n    stop_signal: ${IMAGESERVING_T_UNSET:-INT}\n")
    ).components[0]
    assert (comp.restart, comp.stop_signal) == ("always", signal.SIGINT)


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_non_finite_durations_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="components.is.stop_timeout"):
        parse(one(f"    stop_timeout: {value}\n"))


# --------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_config_error(text: str) -> None:
    try:
        cfg = parse(text)
    except ConfigError as err:
        assert err.path == NAME
        return
    assert cfg.components


YAMLISH = st.text(alphabet="ab:-_ \n\t[]{},&*!'\"#|>?%@`019.~", max_size=120)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_yaml_shaped_text_raises_only_config_error(tail: str) -> None:
    try:
        parse(one() + tail)
    except ConfigError as err:
        assert err.path == NAME


# Values that exercise every converter, without the input families pinned by the regression cases above.
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=False, allow_infinity=False)
    # no "--5": that one is pinned in ESCAPES
    | st.text(alphabet="abcxyzTERMSIG:/.-_ 0123456789${}", max_size=14).filter(lambda t: "--" not in t)
    | st.from_regex(r"-?[0-9]{1,3}(\.[0-9])?(ms|s|m|h|KiB|MiB|GiB|MB|B)?", fullmatch=True)
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["tcp", "http", "command", "initial", "max", "x"]), inner, max_size=2
        )
    ),
    max_leaves=5,
)
SETTINGS = [
    "description",
    "cwd",
    "user",
    "start_priority",
    "ready",
    "start_delay",
    "ready_timeout",
    "stop_signal",
    "stop_timeout",
    "restart",
    "start_retries",
    "backoff",
    "max_memory",
    "bogus",
]
COMPONENT = st.fixed_dictionaries(
    {"command": st.just(["/bin/prog"]) | st.lists(SCALAR, max_size=2) | SCALAR},
    optional={**{k: VALUE for k in SETTINGS}, "env": st.dictionaries(st.sampled_from(["A", "B"]), VALUE)},
)
DOCUMENT = st.fixed_dictionaries(
    {"components": st.dictionaries(st.sampled_from(["is", "ps", "Is", "s v"]), COMPONENT, max_size=2)},
    optional={
        "supervisor": st.fixed_dictionaries({}, optional={"log_max_bytes": VALUE, "log_backups": VALUE})
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENT)
def test_structured_documents_raise_only_config_error(document: dict[str, object]) -> None:
    try:
        cfg = parse(yaml.safe_dump(document))
    except ConfigError as err:
        assert err.path == NAME and err.line is not None
        return
    # what loads is well typed and survives the trip to the supervisor
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg
