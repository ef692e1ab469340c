"""The `health:` section: parsed into HealthCheck, refused with file, line and key; the digest."""

from __future__ import annotations

import pytest

from imageserving_fleet.agent.config import digest, from_dict, parse_config, to_dict
from imageserving_fleet.errors import ConfigError

BASE = "components:\n  ps:\n    command: [/bin/ps]\n"


def test_health_defaults_and_round_trip_through_json() -> None:
    cfg = parse_config(BASE + "    health: {http: 'http://127.0.0.1:8080/livez'}\n", "a.yaml")
    h = cfg.component("ps").health
    assert h is not None and h.check.url.endswith("/livez")
    assert (h.interval, h.timeout, h.failures, h.start_period) == (10.0, 2.0, 3, 60.0)
    again = from_dict(to_dict(cfg))
    assert again == cfg and digest(again) == digest(cfg)


@pytest.mark.parametrize(("health", "key", "text"), [
    ("{}", "components.ps.health", "exactly one of tcp, http or command"),
    ("{tcp: '127.0.0.1:1', http: 'http://x'}", "components.ps.health", "exactly one"),
    ("{tcp: 'nohost'}", "components.ps.health.tcp", "HOST:PORT"),
    ("{tcp: '127.0.0.1:1', interval: 0s}", "components.ps.health.interval", "above 0"),
    ("{tcp: '127.0.0.1:1', interval: 1s, timeout: 2s}", "components.ps.health.timeout", "at most the interval"),
    ("{tcp: '127.0.0.1:1', failures: 0}", "components.ps.health.failures", ">= 1"),
    ("{tcp: '127.0.0.1:1', retries: 3}", "components.ps.health.retries", "unknown key"),
])
def test_bad_health_sections_name_file_line_and_key(health: str, key: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + f"    health: {health}\n", "a.yaml")
    assert info.value.key == key and info.value.line == 4 and text in str(info.value)
    assert str(info.value).startswith("a.yaml:4: ")


def test_digest_follows_the_effective_settings_not_the_file_name() -> None:
    a = parse_config(BASE, "a.yaml")
    assert digest(a) == digest(parse_config("# a comment\n" + BASE, "b.yaml"))
    assert digest(a) != digest(parse_config(BASE + "    env: {X: '1'}\n", "a.yaml"))
    assert digest(parse_config(BASE + "    health: {tcp: '127.0.0.1:1'}\n")) != digest(a)
