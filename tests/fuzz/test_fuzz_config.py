"""Fuzz the agent's configuration loader: whatever the file holds, only ConfigError comes out.

Complements tests/agent/test_config.py (which fuzzes well-formed documents of random shape): here
raw text, mutations of a valid configuration and hostile YAML constructs.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from imageserving_fleet.agent.config import from_dict, parse_config, to_dict
from imageserving_fleet.errors import ConfigError

from .strategies import DEEP, FAST, SCALAR, TEXT, json_values, nested

VALID: dict[str, Any] = {
    "supervisor": {"log_max_bytes": "10MiB", "log_backups": 5},
    "components": {
        "is": {"description": "Image Server", "command": ["/bin/true", "--port", "27345"], "cwd": "/tmp",
               "env": {"A": "1"}, "user": None, "start_priority": 1, "ready": {"tcp": "127.0.0.1:27345"},
               "start_delay": "5s", "ready_timeout": "60s", "stop_signal": "TERM", "stop_timeout": "60s",
               "restart": "on-failure", "start_retries": 5,
               "backoff": {"initial": "1s", "max": "60s", "reset_after": "60s"}, "max_memory": "2GiB"},
        "ps": {"command": ["/bin/true"], "ready": {"http": "http://127.0.0.1:8080/"}, "start_priority": 2},
        "svg": {"command": ["/bin/true"], "ready": {"command": ["/bin/true"]}},
    },
}
PATHS = [("supervisor", k) for k in VALID["supervisor"]] + [
    ("components", cid, key) for cid, comp in VALID["components"].items() for key in comp]


def _only_config_error(text: str) -> None:
    try:
        cfg = parse_config(text, "fuzz.yaml")
    except ConfigError as err:
        assert str(err).startswith("fuzz.yaml"), err  # the file is always named
        return
    # what loads survives the trip to the supervisor as JSON
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg


@FAST
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _only_config_error(text)


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_read_as_latin1(data: bytes) -> None:
    _only_config_error(data.decode("latin-1"))


def _mutate(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@FAST
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(SCALAR, json_values(8))), min_size=1, max_size=3))
def test_mutations_of_a_valid_config(changes: list[tuple[tuple[str, ...], Any]]) -> None:
    doc = VALID
    for path, value in changes:
        doc = _mutate(doc, path, value)
    _only_config_error(yaml.safe_dump(doc))


@FAST
@given(st.sampled_from(PATHS), TEXT)
def test_hostile_strings_in_every_field(path: tuple[str, ...], value: str) -> None:
    _only_config_error(yaml.safe_dump(_mutate(VALID, path, value)))


@FAST
@given(st.dictionaries(TEXT, json_values(10), max_size=4), st.sampled_from(["is", "IS", "is;reboot", "a" * 40, "1x", ""]))
def test_random_component_blocks(block: dict[str, Any], cid: str) -> None:
    _only_config_error(yaml.safe_dump({"components": {cid: block}}))


HOSTILE_YAML = [
    "a: &a [*a]",                                            # self-referencing alias
    "components: &c {is: {command: [x], env: *c}}",
    "x: &x [a,a,a,a,a,a,a,a,a]\ny: &y [*x,*x,*x,*x,*x,*x,*x,*x,*x]\nz: &z [*y,*y,*y,*y,*y,*y,*y,*y,*y]\n"
    "components: {is: {command: [x], env: {Z: [*z,*z,*z,*z,*z,*z,*z,*z,*z]}}}",   # billion laughs (small)
    "components: !!python/object/apply:os.system ['touch /tmp/isf-pwned']",
    "components: {is: {command: !!binary aGVsbG8=}}",
    "components: {is: {command: [x], start_delay: 2001-13-45}}",
    "components: {is: {command: [x], start_retries: " + "9" * 5000 + "}}",
    "components: {is: {command: [x], start_delay: 1e400s}}",
    "components: {? [a, b] : {command: [x]}}",
    "--- a\n--- b\n",
    "%YAML 9.9\n---\na: 1",
    "\ufeffcomponents: {}",
    "components:\n  is:\n    command: [x]\n  is:\n    command: [y]\n",
]


@pytest.mark.parametrize("text", HOSTILE_YAML, ids=range(len(HOSTILE_YAML)))
def test_hostile_yaml_constructs(text: str) -> None:
    _only_config_error(text)


@pytest.mark.parametrize("depth", [50, 500])
def test_moderate_nesting(depth: int) -> None:
    _only_config_error("components:\n  is:\n    command: [x]\n    env: " + nested(depth))


def test_deep_nesting_is_a_config_error() -> None:
    _only_config_error("components:\n  is:\n    command: [x]\n    env: " + nested(3000))


@pytest.mark.slow
@DEEP
@given(st.sampled_from(PATHS), st.one_of(SCALAR, json_values(30)))
def test_mutations_deep(path: tuple[str, ...], value: Any) -> None:
    _only_config_error(yaml.safe_dump(_mutate(VALID, path, value)))
