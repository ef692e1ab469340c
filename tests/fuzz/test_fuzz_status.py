"""Fuzz what the controller reads back from a host: the agent's status JSON (schema 1).

A host can be broken or lying. parse_status raises only SchemaError; classify never raises and
turns any output into a verdict with a reason, whatever the exit status.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imageserving_fleet.fleet.results import HostResult, Result, classify, fleet_document
from imageserving_fleet.schema import SchemaError, parse_status

from .strategies import DEEP, FAST, SCALAR, json_values, nested

GOOD: dict[str, Any] = {
    "schema": 1, "host": "is01", "agent_version": "0.1.0", "time": "2026-11-26T17:00:00Z",
    "supervisor": {"state": "RUNNING", "pid": 4100, "uptime_s": 3600.2, "rss_bytes": 19316000},
    "components": [{"id": "is", "description": "Image Server", "state": "RUNNING", "pid": 4107, "uptime_s": 3598.7,
                    "rss_bytes": 123456789, "restarts": 0, "last_exit": None, "message": ""}],
    "message": "",
}
FIELDS = ([(k,) for k in GOOD] + [("supervisor", k) for k in GOOD["supervisor"]]
          + [("components", 0, k) for k in GOOD["components"][0]])
COMMANDS = st.sampled_from(["status", "start", "stop", "restart"])


def _parse(doc: Any) -> None:
    try:
        status = parse_status(doc)
    except SchemaError:
        return
    assert status.schema == 1 and status.supervisor.state


def _classify(command: str, code: int, out: bytes, err: bytes) -> HostResult:
    res = classify("h", command, code, out, err, 0.1)
    assert isinstance(res.result, Result)
    if res.result != Result.OK:
        assert res.reason, res
    json.dumps(fleet_document(command, [res]))  # the --json report can always be written
    return res


@FAST
@given(json_values(30))
def test_any_json_value(doc: Any) -> None:
    _parse(doc)


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@FAST
@given(st.lists(st.tuples(st.sampled_from(FIELDS), st.one_of(SCALAR, json_values(6))), min_size=1, max_size=3),
       COMMANDS, st.integers(-1, 300))
def test_mutated_documents(changes: list[tuple[tuple[Any, ...], Any]], command: str, code: int) -> None:
    doc: Any = GOOD
    for path, value in changes:
        try:
            doc = _set(doc, path, value)
        except (TypeError, KeyError, IndexError):
            break  # an earlier change replaced a container by a scalar
    _parse(doc)
    _classify(command, code, json.dumps(doc).encode(), b"")


@FAST
@given(st.binary(max_size=400), st.binary(max_size=200), COMMANDS, st.integers(-1, 300))
def test_raw_output(out: bytes, err: bytes, command: str, code: int) -> None:
    _classify(command, code, out, err)


@pytest.mark.parametrize("payload", [
    nested(100_000).encode(), nested(100_000, '{"a":', "}").encode(),   # used to raise RecursionError
    b"9" * 100_000, b'{"schema": 1e999}', b"\xff\xfe{}", b"NaN", b'{"schema": 1, "schema": 2}',
    json.dumps({**GOOD, "components": [GOOD["components"][0]] * 10_000}).encode(),
])
def test_hostile_payloads(payload: bytes) -> None:
    res = _classify("status", 0, payload, b"")
    assert res.result in (Result.OK, Result.FAILED)


@pytest.mark.slow
@DEEP
@given(st.binary(max_size=2000), COMMANDS, st.integers(-1, 300))
def test_raw_output_deep(out: bytes, command: str, code: int) -> None:
    _classify(command, code, out, b"")
