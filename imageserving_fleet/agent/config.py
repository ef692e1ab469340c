"""Load and validate the agent's YAML configuration into typed, frozen dataclasses.

Every error is a ConfigError naming the file, the line and the key, raised before anything starts.
Lookup order: --config, IMAGESERVING_CONFIG, /etc/imageserving/agent.yaml, the packaged demo stack.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..schema import COMPONENT_ID_RE
from ..units import expand_vars, parse_duration, parse_size
from ..yamldepth import MAX_DEPTH, too_deep

SYSTEM_CONFIG = "/etc/imageserving/agent.yaml"
ID_RE = COMPONENT_ID_RE
RESTART_POLICIES = ("always", "on-failure", "never")
MAX_CONFIG_BYTES = 4 * 2**20
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only; str.isdigit() takes '²', which int() refuses


def packaged_default() -> Path:
    """The demo stack's configuration, shipped inside the package."""
    return Path(__file__).parent / "demo" / "demo.yaml"


@dataclass(frozen=True)
class ReadyCheck:
    """How to tell that a started component is serving: tcp, http or command."""

    kind: str                      # "tcp" | "http" | "command"
    host: str = ""
    port: int = 0
    url: str = ""
    argv: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "tcp":
            return f"tcp {self.host}:{self.port}"
        if self.kind == "http":
            return f"http {self.url}"
        return "command " + " ".join(self.argv)


@dataclass(frozen=True)
class HealthCheck:
    """Liveness of a RUNNING component: the check, how often, and how many failures in a row restart it."""

    check: ReadyCheck
    interval: float = 10.0
    timeout: float = 2.0
    failures: int = 3              # consecutive counted failures before a restart
    start_period: float = 60.0     # failures this soon after RUNNING do not count


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delay between restarts of a component that keeps failing."""

    initial: float = 1.0
    max: float = 60.0
    reset_after: float = 60.0

    def delay(self, level: int) -> float:
        """Takes the number of quick failures so far; returns seconds to wait (0 for the first)."""
        return 0.0 if level <= 0 else min(self.initial * 2 ** (level - 1), self.max)


@dataclass(frozen=True)
class ComponentConfig:
    """One supervised program."""

    id: str
    command: tuple[str, ...]
    description: str = ""
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    start_priority: int = 1
    ready: ReadyCheck | None = None
    start_delay: float = 5.0
    ready_timeout: float = 60.0
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 60.0
    restart: str = "on-failure"
    start_retries: int = 5
    backoff: Backoff = Backoff()
    max_memory: int | None = None
    health: HealthCheck | None = None


@dataclass(frozen=True)
class AgentConfig:
    """A whole validated configuration file."""

    path: str
    components: tuple[ComponentConfig, ...]
    log_max_bytes: int = 10 * 2**20
    log_backups: int = 5
    metrics_listen: str | None = None   # supervisor.metrics.listen: serve /metrics there (SPEC §7)

    def component(self, cid: str) -> ComponentConfig:
        for comp in self.components:
            if comp.id == cid:
                return comp
        raise KeyError(cid)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.components)

    def priorities(self) -> list[list[str]]:
        """Component ids grouped by start_priority, lowest first (the start order)."""
        levels = sorted({c.start_priority for c in self.components})
        return [[c.id for c in self.components if c.start_priority == p] for p in levels]


def resolve_path(explicit: str | None) -> Path:
    """Takes --config (or None); returns the file to use, following the documented lookup order."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("IMAGESERVING_CONFIG")
    if env:
        return Path(env)
    if Path(SYSTEM_CONFIG).exists():
        return Path(SYSTEM_CONFIG)
    return packaged_default()


def load_config(path: str | Path) -> AgentConfig:
    """Takes a YAML file path; returns the validated AgentConfig or raises ConfigError."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)  # --config /dev/zero must not eat the memory
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"larger than {MAX_CONFIG_BYTES // 2**20} MiB: not an agent configuration", path=name)
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration: {exc.strerror or exc}", path=name) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", path=name) from None
    return parse_config(text, name)


def parse_config(text: str, name: str = "<config>") -> AgentConfig:
    """Takes YAML text; returns the validated AgentConfig or raises ConfigError."""
    import yaml  # here, not at the top: the supervisor gets its config as JSON and never pays for yaml

    _Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        deep = too_deep(text, _Loader)
        if deep is not None:
            raise ConfigError(f"YAML nested deeper than {MAX_DEPTH} levels", path=name, line=deep)
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc}", path=name, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=name) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise these for values such as 2001-13-45 or a 5000-digit integer.
        raise ConfigError(f"invalid YAML value: {str(exc)[:200]}", path=name) from None
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines, set())
    try:
        return _Validator(name, lines).config(data)
    except RecursionError:
        raise ConfigError("a YAML alias refers to itself", path=name) from None


def _index_lines(node: Any, path: tuple[str, ...], out: dict[tuple[str, ...], int], seen: set[int]) -> None:
    """Records the 1-based line of every mapping key, so errors can point at it.

    A node shared through a YAML alias is walked once (`seen`): aliases can nest exponentially or
    refer to themselves.
    """
    import yaml

    out.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (str(key.value),)
            out[sub] = key.start_mark.line + 1
            _index_lines(value, sub, out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (str(i),), out, seen)


class _Validator:
    """Turns parsed YAML into dataclasses; every complaint carries file, line and key."""

    def __init__(self, name: str, lines: dict[tuple[str, ...], int]) -> None:
        self.name, self.lines = name, lines
        self.env = _environment()

    def fail(self, path: tuple[str, ...], message: str) -> ConfigError:
        line = None
        for i in range(len(path), -1, -1):
            line = self.lines.get(path[:i])
            if line:
                break
        return ConfigError(message, path=self.name, line=line, key=".".join(path) or None)

    def mapping(self, value: Any, path: tuple[str, ...], allowed: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if str(key) not in allowed:
                raise self.fail(path + (str(key),), f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return value

    def text(self, value: Any, path: tuple[str, ...]) -> str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.fail(path, f"expected text, got {value!r}")
        try:
            return expand_vars(str(value), self.env)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    def convert(self, fn: Any, value: Any, path: tuple[str, ...]) -> Any:
        try:
            return fn(self.text(value, path) if isinstance(value, str) else value)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    def integer(self, value: Any, path: tuple[str, ...], minimum: int = 0) -> int:
        if isinstance(value, str):
            value = self.text(value, path)
            value = int(value) if _INTEGER.fullmatch(value.strip()) else value
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(path, f"expected a whole number >= {minimum}, got {value!r}")
        return value

    def config(self, data: Any) -> AgentConfig:
        top = self.mapping(data, (), {"supervisor", "components"})
        sup = self.mapping(top.get("supervisor"), ("supervisor",), {"log_max_bytes", "log_backups", "metrics"})
        log_max = self.convert(parse_size, sup.get("log_max_bytes", 10 * 2**20), ("supervisor", "log_max_bytes"))
        if log_max < 4096:
            raise self.fail(("supervisor", "log_max_bytes"), "must be at least 4KiB")
        backups = self.integer(sup.get("log_backups", 5), ("supervisor", "log_backups"))
        comps_raw = top.get("components")
        if not isinstance(comps_raw, dict) or not comps_raw:
            raise self.fail(("components",), "expected a mapping of component id to settings, with at least one")
        comps = [self.component(str(cid), spec) for cid, spec in comps_raw.items()]
        return AgentConfig(path=self.name, components=tuple(comps), log_max_bytes=log_max, log_backups=backups,
                           metrics_listen=self.metrics_listen(sup.get("metrics")))

    def metrics_listen(self, value: Any) -> str | None:
        path = ("supervisor", "metrics")
        listen = self.mapping(value, path, {"listen"}).get("listen")
        if listen is None:
            return None
        from ..metrics_http import parse_listen  # stdlib only; prometheus_client comes with the listener

        text = self.text(listen, path + ("listen",))
        try:
            parse_listen(text)
        except ValueError as exc:
            raise self.fail(path + ("listen",), str(exc)) from None
        return text

    def component(self, cid: str, spec: Any) -> ComponentConfig:
        base = ("components", cid)
        if not ID_RE.match(cid):
            raise self.fail(base, "component id must be lowercase letters, digits, - or _ (at most 32)")
        keys = {"description", "command", "cwd", "env", "user", "start_priority", "ready", "start_delay",
                "ready_timeout", "stop_signal", "stop_timeout", "restart", "start_retries", "backoff",
                "max_memory", "health"}
        s = self.mapping(spec, base, keys)
        command = s.get("command")
        if not isinstance(command, list) or not command:
            raise self.fail(base + ("command",), "expected a non-empty argv list such as [\"/usr/bin/prog\", \"--flag\"]"
                            " (a shell string is not accepted)")
        argv = tuple(self.text(a, base + ("command", str(i))) for i, a in enumerate(command))
        env_value = s.get("env")
        env_keys = set(map(str, env_value)) if isinstance(env_value, dict) else set()
        env_raw = self.mapping(env_value, base + ("env",), env_keys)
        env = {str(k): self.text(v, base + ("env", str(k))) for k, v in env_raw.items()}
        restart = s.get("restart", "on-failure")
        restart = self.text(restart, base + ("restart",)) if isinstance(restart, str) else restart
        if restart not in RESTART_POLICIES:
            raise self.fail(base + ("restart",), f"expected one of {', '.join(RESTART_POLICIES)}, got {restart!r}")
        b = self.mapping(s.get("backoff"), base + ("backoff",), {"initial", "max", "reset_after"})
        backoff = Backoff(
            initial=self.convert(parse_duration, b.get("initial", 1.0), base + ("backoff", "initial")),
            max=self.convert(parse_duration, b.get("max", 60.0), base + ("backoff", "max")),
            reset_after=self.convert(parse_duration, b.get("reset_after", 60.0), base + ("backoff", "reset_after")),
        )
        max_memory = s.get("max_memory")
        return ComponentConfig(
            id=cid,
            command=argv,
            description=self.text(s.get("description", cid), base + ("description",)),
            cwd=self.text(s["cwd"], base + ("cwd",)) if s.get("cwd") is not None else None,
            env=env,
            user=self.text(s["user"], base + ("user",)) if s.get("user") is not None else None,
            start_priority=self.integer(s.get("start_priority", 1), base + ("start_priority",)),
            ready=self.ready(s.get("ready"), base + ("ready",)),
            start_delay=self.convert(parse_duration, s.get("start_delay", 5.0), base + ("start_delay",)),
            ready_timeout=self.convert(parse_duration, s.get("ready_timeout", 60.0), base + ("ready_timeout",)),
            stop_signal=self.signal(s.get("stop_signal", "TERM"), base + ("stop_signal",)),
            stop_timeout=self.convert(parse_duration, s.get("stop_timeout", 60.0), base + ("stop_timeout",)),
            restart=restart,
            start_retries=self.integer(s.get("start_retries", 5), base + ("start_retries",), minimum=1),
            backoff=backoff,
            max_memory=None if max_memory is None else self.convert(parse_size, max_memory, base + ("max_memory",)),
            health=self.health(s.get("health"), base + ("health",)),
        )

    def health(self, value: Any, path: tuple[str, ...]) -> HealthCheck | None:
        if value is None:
            return None
        timing = {"interval", "timeout", "failures", "start_period"}
        h = self.mapping(value, path, {"tcp", "http", "command"} | timing)
        kinds = {k: v for k, v in h.items() if k not in timing}
        if len(kinds) != 1:
            raise self.fail(path, "expected exactly one of tcp, http or command")
        check = self.ready(kinds, path)
        assert check is not None
        interval = self.convert(parse_duration, h.get("interval", 10.0), path + ("interval",))
        timeout = self.convert(parse_duration, h.get("timeout", 2.0), path + ("timeout",))
        if interval <= 0:
            raise self.fail(path + ("interval",), "must be above 0")
        if not 0 < timeout <= interval:
            raise self.fail(path + ("timeout",), f"must be above 0 and at most the interval ({interval:g}s)")
        return HealthCheck(
            check=check, interval=interval, timeout=timeout,
            failures=self.integer(h.get("failures", 3), path + ("failures",), minimum=1),
            start_period=self.convert(parse_duration, h.get("start_period", 60.0), path + ("start_period",)),
        )

    def ready(self, value: Any, path: tuple[str, ...]) -> ReadyCheck | None:
        if value is None:
            return None
        r = self.mapping(value, path, {"tcp", "http", "command"})
        if len(r) != 1:
            raise self.fail(path, "expected exactly one of tcp, http or command")
        kind, target = next(iter(r.items()))
        if kind == "tcp":
            text = self.text(target, path + ("tcp",))
            host, _, port = text.rpartition(":")
            if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
                raise self.fail(path + ("tcp",), f"expected HOST:PORT, got {text!r}")
            return ReadyCheck("tcp", host=host.strip("[]"), port=int(port))
        if kind == "http":
            url = self.text(target, path + ("http",))
            if not url.startswith(("http://", "https://")):
                raise self.fail(path + ("http",), f"expected an http:// or https:// URL, got {url!r}")
            return ReadyCheck("http", url=url)
        if not isinstance(target, list) or not target:
            raise self.fail(path + ("command",), "expected a non-empty argv list")
        return ReadyCheck("command", argv=tuple(self.text(a, path + ("command",)) for a in target))

    def signal(self, value: Any, path: tuple[str, ...]) -> int:
        name = (self.text(value, path) if isinstance(value, str) else str(value)).upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            return int(signal.Signals[name])
        except KeyError:
            raise self.fail(path, f"unknown signal {value!r} (e.g. TERM, INT, QUIT, HUP)") from None


def _environment() -> dict[str, str]:
    """The environment for ${VAR} expansion, plus ${PYTHON}: the interpreter running the agent."""
    env = dict(os.environ)
    env.setdefault("PYTHON", sys.executable)
    return env


def to_dict(config: AgentConfig) -> dict[str, Any]:
    """Takes a validated config; returns plain JSON-able data (how the supervisor receives it)."""
    from dataclasses import asdict

    return asdict(config)


def _check(d: dict[str, Any]) -> ReadyCheck:
    return ReadyCheck(**{**d, "argv": tuple(d.get("argv", ()))})


def digest(config: AgentConfig) -> str:
    """sha256 of the effective configuration (what the components run with, not where it came from)."""
    import hashlib
    import json

    data = to_dict(config)
    data.pop("path", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def from_dict(data: dict[str, Any]) -> AgentConfig:
    """Takes what to_dict returned (already validated); returns the AgentConfig again."""
    comps = []
    for c in data["components"]:
        c = dict(c)
        c["command"] = tuple(c["command"])
        c["backoff"] = Backoff(**c["backoff"])
        if c.get("ready"):
            c["ready"] = _check(c["ready"])
        if c.get("health"):
            c["health"] = HealthCheck(**{**c["health"], "check": _check(c["health"]["check"])})
        comps.append(ComponentConfig(**c))
    return AgentConfig(path=data["path"], components=tuple(comps), log_max_bytes=data["log_max_bytes"],
                       log_backups=data["log_backups"], metrics_listen=data.get("metrics_listen"))
