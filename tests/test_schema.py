"""parse_status(): schema-1 documents round-trip, unknown fields are ignored, lies are refused."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imageserving_fleet.schema import (
    SCHEMA,
    STATES,
    AgentStatus,
    ComponentStatus,
    SchemaError,
    SupervisorStatus,
    parse_status,
)

# The example of SPEC §2, completed with the other two components.
DOC: dict[str, Any] = {
    "schema": 1,
    "host": "is01",
    "agent_version": "0.1.0",
    "time": "2026-11-26T17:00:00Z",
    "supervisor": {"state": "RUNNING", "pid": 4100, "uptime_s": 3600.2, "rss_bytes": 19316000},
    "components": [
        {
            "id": "is",
            "description": "Image Server",
            "state": "RUNNING",
            "pid": 4107,
            "uptime_s": 3598.7,
            "rss_bytes": 123456789,
            "restarts": 0,
            "last_exit": None,
            "message": "",
        },
        {
            "id": "svg",
            "description": "SVG server",
            "state": "BACKOFF",
            "pid": None,
            "uptime_s": None,
            "rss_bytes": None,
            "restarts": 3,
            "last_exit": "exit 1",
            "message": "retry 3/4 in 4s",
        },
        {
            "id": "ps",
            "description": "Platform Server",
            "state": "FATAL",
            "pid": None,
            "uptime_s": None,
            "rss_bytes": None,
            "restarts": 5,
            "last_exit": "signal KILL",
            "message": "gave up",
        },
    ],
    "message": "",
}

DOWN: dict[str, Any] = {
    "schema": 1,
    "host": "is02",
    "agent_version": "0.1.0",
    "time": "2026-11-26T17:00:00Z",
    "supervisor": {"state": "STOPPED"},
    "components": [],
    "message": "Server Supervisor is not running",
}


def doc(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(DOC)
    d.update(changes)
    return d


def with_component(i: int = 0, **changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(DOC)
    d["components"][i].update(changes)
    return d


def with_supervisor(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(DOC)
    d["supervisor"].update(changes)
    return d


# ----------------------------------------------------------------- valid input


@pytest.mark.parametrize("document", [DOC, DOWN], ids=["running", "supervisor-down"])
def test_round_trip(document: dict[str, Any]) -> None:
    status = parse_status(document)
    out = status.to_dict()
    # Every field read comes back; the newer optional fields come back with their defaults.
    assert {k: v for k, v in out.items() if k != "components"} == {k: v for k, v in document.items()
                                                                    if k != "components"}
    for written, read in zip(out["components"], document["components"], strict=True):
        assert {k: written[k] for k in read} == read
        assert (written["health"], written["held"], written["restart_reason"]) == (None, False, None)
    assert parse_status(status.to_dict()) == status
    # and through real JSON text, as the fleet reads it
    assert parse_status(json.loads(json.dumps(status.to_dict()))) == status


def test_parsed_fields() -> None:
    status = parse_status(DOC)
    assert status.host == "is01"
    assert status.schema == SCHEMA
    assert status.supervisor == SupervisorStatus("RUNNING", 4100, 3600.2, 19316000)
    assert [c.id for c in status.components] == ["is", "svg", "ps"]
    assert status.component("is") == ComponentStatus(
        id="is",
        description="Image Server",
        state="RUNNING",
        pid=4107,
        uptime_s=3598.7,
        rss_bytes=123456789,
        restarts=0,
        last_exit=None,
        message="",
    )
    assert status.component("svg") is not None and status.component("svg").restarts == 3  # type: ignore[union-attr]
    assert status.component("nope") is None
    assert status.down()


def test_supervisor_down() -> None:
    status = parse_status(DOWN)
    assert status.supervisor == SupervisorStatus("STOPPED")
    assert status.components == ()
    assert status.message == "Server Supervisor is not running"


def test_down_follows_the_one_rule() -> None:
    d = copy.deepcopy(DOC)
    for c in d["components"]:
        c["state"] = "RUNNING"
    assert parse_status(d).down() == [] and parse_status(d).held == []
    d["components"][0].update(state="STOPPED", held=True)
    held = parse_status(d)
    first = held.components[0]
    assert held.down() == [] and held.held == [first.id] and held.down(named=True) == [first]


def test_minimal_document_gets_defaults() -> None:
    status = parse_status({"schema": 1, "supervisor": {"state": "RUNNING"}, "components": [{"id": "is"}]})
    assert status.host == "" and status.agent_version == "" and status.time == "" and status.message == ""
    assert status.component("is") == ComponentStatus(id="is")
    assert status.supervisor.pid is None


def test_unknown_fields_are_kept_in_extra_and_ignored() -> None:
    d = doc(future_field={"a": 1}, capacity=3)
    d["supervisor"]["load"] = 0.5
    d["components"][0]["threads"] = 12
    status = parse_status(d)
    assert status.extra == {"future_field": {"a": 1}, "capacity": 3}
    assert status == parse_status(DOC)  # extra does not take part in equality
    assert status.to_dict() == parse_status(DOC).to_dict()  # and is not written back out
    assert "future_field" not in status.to_dict() and "threads" not in status.to_dict()["components"][0]


@pytest.mark.parametrize(
    ("document", "check"),
    [
        (with_component(restarts=None), lambda s: s.components[0].restarts == 0),
        (with_component(description=None), lambda s: s.components[0].description == ""),
        (with_component(message=None), lambda s: s.components[0].message == ""),
        (with_component(last_exit=3), lambda s: s.components[0].last_exit == "3"),
        (with_component(uptime_s=12), lambda s: s.components[0].uptime_s == 12),  # int is a number
        (with_supervisor(uptime_s=5), lambda s: s.supervisor.uptime_s == 5),
        (doc(message=None), lambda s: s.message == ""),
    ],
)
def test_lenient_fields(document: dict[str, Any], check: Any) -> None:
    assert check(parse_status(document))


# ------------------------------------------------------------------------ lies

LIES: list[tuple[str, Any, str]] = [
    ("not an object: list", [DOC], "not a JSON object"),
    ("not an object: string", json.dumps(DOC), "not a JSON object"),
    ("not an object: null", None, "not a JSON object"),
    ("not an object: number", 1, "not a JSON object"),
    ("schema missing", {k: v for k, v in DOC.items() if k != "schema"}, "schema"),
    ("schema 2", doc(schema=2), "schema"),
    ("schema 0", doc(schema=0), "schema"),
    ("schema as text", doc(schema="1"), "schema"),
    ("supervisor missing", {k: v for k, v in DOC.items() if k != "supervisor"}, "supervisor"),
    ("supervisor not an object", doc(supervisor="RUNNING"), "supervisor"),
    ("supervisor unknown state", with_supervisor(state="UP"), "supervisor"),
    ("supervisor lowercase state", with_supervisor(state="running"), "supervisor"),
    ("supervisor state missing", doc(supervisor={"pid": 1}), "supervisor"),
    ("supervisor pid a string", with_supervisor(pid="4100"), r"supervisor\.pid"),
    ("supervisor pid a float", with_supervisor(pid=4100.0), r"supervisor\.pid"),
    ("supervisor pid a bool", with_supervisor(pid=True), r"supervisor\.pid"),
    ("supervisor uptime a string", with_supervisor(uptime_s="1h"), r"supervisor\.uptime_s"),
    ("supervisor uptime a bool", with_supervisor(uptime_s=False), r"supervisor\.uptime_s"),
    ("supervisor rss a float", with_supervisor(rss_bytes=1.5), r"supervisor\.rss_bytes"),
    ("components not a list", doc(components={"is": {}}), "components"),
    ("components a string", doc(components="is"), "components"),
    ("components null", doc(components=None), "components"),
    ("component not an object", doc(components=["is"]), r"components\[0\]"),
    ("component without id", doc(components=[{"state": "RUNNING"}]), r"components\[0\]"),
    ("component id a number", with_component(id=1), r"components\[0\]"),
    ("component unknown state", with_component(1, state="CRASHED"), r"components\[1\]\.state"),
    ("component state null", with_component(state=None), r"components\[0\]\.state"),
    ("component pid a string", with_component(pid="4107"), r"components\[0\]\.pid"),
    ("component pid a bool", with_component(pid=True), r"components\[0\]\.pid"),
    ("component pid a list", with_component(pid=[4107]), r"components\[0\]\.pid"),
    ("component uptime a string", with_component(uptime_s="3598.7"), r"components\[0\]\.uptime_s"),
    ("component uptime a bool", with_component(uptime_s=True), r"components\[0\]\.uptime_s"),
    ("component rss a string", with_component(rss_bytes="1 GiB"), r"components\[0\]\.rss_bytes"),
    ("component rss a bool", with_component(rss_bytes=False), r"components\[0\]\.rss_bytes"),
    ("component restarts a bool", with_component(restarts=True), r"components\[0\]\.restarts"),
    ("component restarts a string", with_component(restarts="0"), r"components\[0\]\.restarts"),
    ("component restarts a float", with_component(restarts=1.0), r"components\[0\]\.restarts"),
]


@pytest.mark.parametrize(("document", "match"), [(d, m) for _, d, m in LIES], ids=[n for n, _, _ in LIES])
def test_lies_are_refused(document: Any, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        parse_status(document)


def test_schema_error_is_a_value_error() -> None:
    assert issubclass(SchemaError, ValueError)


def test_schema_true_is_refused() -> None:
    with pytest.raises(SchemaError):
        parse_status(doc(schema=True))


@pytest.mark.parametrize("name", ["host", "agent_version", "time"])
def test_null_text_fields_are_not_the_word_none(name: str) -> None:
    try:
        status = parse_status(doc(**{name: None}))
    except SchemaError:
        return  # refusing the lie is fine too
    assert getattr(status, name) == ""


# ----------------------------------------------------------------- properties

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_arbitrary_json_parses_or_raises_schema_error(value: Any) -> None:
    try:
        status = parse_status(value)
    except SchemaError:
        return
    assert isinstance(status, AgentStatus)


STATE = st.sampled_from(STATES) | JSON
COMPONENT = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"id": st.text(max_size=4) | JSON, "state": STATE},
        optional={
            name: JSON
            for name in ("pid", "uptime_s", "rss_bytes", "restarts", "last_exit", "message", "description")
        },
    ),
)
SUPERVISOR = st.one_of(
    JSON,
    st.fixed_dictionaries({"state": STATE}, optional={"pid": JSON, "uptime_s": JSON, "rss_bytes": JSON}),
)
NEAR_VALID = st.fixed_dictionaries(
    {
        "schema": st.sampled_from([1, 1, 1, 2, "1", None]),
        "supervisor": SUPERVISOR,
        "components": st.one_of(JSON, st.lists(COMPONENT, max_size=3)),
    },
    optional={name: JSON for name in ("host", "agent_version", "time", "message", "extra")},
)


@given(NEAR_VALID)
def test_near_valid_documents_parse_or_raise_schema_error(value: dict[str, Any]) -> None:
    try:
        status = parse_status(value)
    except SchemaError:
        return
    # What parses is well typed, whatever the input was.
    assert status.supervisor.state in STATES
    for c in status.components:
        assert isinstance(c.id, str) and c.state in STATES
        assert c.pid is None or (isinstance(c.pid, int) and not isinstance(c.pid, bool))
        assert c.rss_bytes is None or (isinstance(c.rss_bytes, int) and not isinstance(c.rss_bytes, bool))
        assert isinstance(c.restarts, int) and not isinstance(c.restarts, bool)
        assert c.uptime_s is None or isinstance(c.uptime_s, int | float)
    # and what parses survives its own to_dict
    assert parse_status(status.to_dict()) == status


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 10**400, -(2**63) - 1])
@pytest.mark.parametrize("name", ["uptime_s", "rss_bytes", "pid"])
def test_numbers_no_agent_sends_are_refused(name: str, value: float) -> None:
    # json.loads takes Infinity, NaN and 400-digit integers; they broke the table and the report.
    if name != "uptime_s" and isinstance(value, float):
        value = 10**400
    with pytest.raises(SchemaError, match="out of range"):
        parse_status(with_component(**{name: value}))


def test_health_hold_socket_and_digest_fields_are_read() -> None:
    doc = with_supervisor(socket="/h/run/supervisor.sock", config_digest="ab" * 32)
    doc["components"][0].update(health="unhealthy", health_failures=2, last_health_error="http: 503",
                                restart_reason="unhealthy: http: 503", held=False)
    doc["components"][1].update(state="STOPPED", pid=None, held=True, message="stopped by operator")
    status = parse_status(doc)
    assert status.supervisor.socket == "/h/run/supervisor.sock" and status.supervisor.config_digest == "ab" * 32
    first = status.components[0]
    assert (first.health, first.health_failures, first.last_health_error, first.restart_reason) == (
        "unhealthy", 2, "http: 503", "unhealthy: http: 503")
    assert status.held == [doc["components"][1]["id"]]
    assert doc["components"][1]["id"] not in [c.id for c in status.down()]
    assert parse_status(status.to_dict()) == status
