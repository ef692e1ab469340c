"""Turn parsed YAML into the typed configuration; every complaint names file, line and key.

Takes what yamlfile.parse_yaml returned; returns model.AgentConfig or raises ConfigError.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Any

from ...errors import ConfigError
from ...schema import COMPONENT_ID_RE
from ...units import expand_vars, parse_duration, parse_size
from .model import (
    NOTIFY_DEFAULT,
    NOTIFY_EVENTS,
    RESTART_POLICIES,
    AgentConfig,
    Backoff,
    ComponentConfig,
    HealthCheck,
    NotifyConfig,
    ReadyCheck,
)
from .yamlfile import LineIndex

ID_RE = COMPONENT_ID_RE
LOG_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}\Z")  # `logs ID:NAME`: no ':' or '/', no shell meaning
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only; str.isdigit() takes '²', which int() refuses


def validate(data: Any, lines: LineIndex, name: str) -> AgentConfig:
    """Takes parsed YAML, its line index and file name; returns the AgentConfig or raises ConfigError."""
    try:
        return _Validator(name, lines).config(data)
    except RecursionError:
        raise ConfigError("a YAML alias refers to itself", path=name) from None


class _Validator:
    """Turns parsed YAML into dataclasses; every complaint carries file, line and key."""

    def __init__(self, name: str, lines: LineIndex) -> None:
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
        sup = self.mapping(top.get("supervisor"), ("supervisor",), {"log_max_bytes", "log_backups", "metrics",
                                                                     "notify"})
        log_max = self.convert(parse_size, sup.get("log_max_bytes", 10 * 2**20), ("supervisor", "log_max_bytes"))
        if log_max < 4096:
            raise self.fail(("supervisor", "log_max_bytes"), "must be at least 4KiB")
        backups = self.integer(sup.get("log_backups", 5), ("supervisor", "log_backups"))
        comps_raw = top.get("components")
        if not isinstance(comps_raw, dict) or not comps_raw:
            raise self.fail(("components",), "expected a mapping of component id to settings, with at least one")
        comps = [self.component(str(cid), spec) for cid, spec in comps_raw.items()]
        return AgentConfig(path=self.name, components=tuple(comps), log_max_bytes=log_max, log_backups=backups,
                           metrics_listen=self.metrics_listen(sup.get("metrics")),
                           notify=self.notify(sup.get("notify")))

    def notify(self, value: Any) -> NotifyConfig | None:
        path = ("supervisor", "notify")
        if value is None:
            return None
        if isinstance(value, dict) and True in value:  # YAML 1.1 reads a bare `on:` key as the boolean true
            value = {("on" if k is True else k): v for k, v in value.items()}
        n = self.mapping(value, path, {"command", "url", "on", "min_interval"})
        command = n.get("command")
        argv: tuple[str, ...] = ()
        if command is not None:
            if not isinstance(command, list) or not command:
                raise self.fail(path + ("command",), "expected a non-empty argv list such as "
                                "[\"/usr/local/bin/page-oncall\"] (a shell string is not accepted)")
            argv = tuple(self.text(a, path + ("command", str(i))) for i, a in enumerate(command))
        url = None
        if n.get("url") is not None:
            url = self.text(n["url"], path + ("url",))
            if not url.startswith(("http://", "https://")):
                raise self.fail(path + ("url",), f"expected an http:// or https:// URL, got {url!r}")
        if not argv and url is None:
            raise self.fail(path, "expected a command, a url or both")
        on = n.get("on", list(NOTIFY_DEFAULT))
        if not isinstance(on, list) or not on:
            raise self.fail(path + ("on",), f"expected a list of events from: {', '.join(NOTIFY_EVENTS)}")
        events = []
        for i, event in enumerate(on):
            name = self.text(event, path + ("on", str(i)))
            if name not in NOTIFY_EVENTS:
                raise self.fail(path + ("on", str(i)), f"unknown event {name!r} (expected one of: "
                                                        f"{', '.join(NOTIFY_EVENTS)})")
            events.append(name)
        return NotifyConfig(command=argv, url=url, on=tuple(dict.fromkeys(events)),
                            min_interval=self.convert(parse_duration, n.get("min_interval", 300.0),
                                                      path + ("min_interval",)))

    def metrics_listen(self, value: Any) -> str | None:
        path = ("supervisor", "metrics")
        listen = self.mapping(value, path, {"listen"}).get("listen")
        if listen is None:
            return None
        from ...metrics_http import parse_listen  # stdlib only; prometheus_client comes with the listener

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
                "max_memory", "health", "logs"}
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
            logs=self.logs(s.get("logs"), base + ("logs",)),
        )

    def logs(self, value: Any, path: tuple[str, ...]) -> dict[str, str]:
        names = set(map(str, value)) if isinstance(value, dict) else set()
        out = {}
        for name, target in self.mapping(value, path, names).items():
            where = path + (str(name),)
            if not LOG_NAME_RE.match(str(name)):
                raise self.fail(where, "a log name must be lowercase letters, digits, '.', '-' or '_' (at most 32)")
            text = self.text(target, where).strip()
            if not text or "\0" in text:
                raise self.fail(where, "expected a file path or a glob such as /var/log/app/access-*.log")
            out[str(name)] = text
        return out

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
