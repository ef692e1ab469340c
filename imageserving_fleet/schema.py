"""The status document (schema 1) that the agent prints and the fleet reads.

Stdlib only: the agent's status client and the fleet controller both import it. Readers ignore
fields they do not know, so newer agents and older controllers keep working together.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .componentstate import STATES, State, is_down, is_held
from .errors import ImageServingError

SCHEMA = 1
COMPONENT_IDS = ("ps", "is", "svg")  # the fleet's table columns; an agent may run others
# What a component id may be: the agent's config refuses others, the fleet checks a command-line
# id against it before it goes near a remote shell.
COMPONENT_ID_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")  # \Z: "$" would let "ps\n" through


class SchemaError(ImageServingError, ValueError):
    """A status document is not schema-1 JSON (a lying or broken agent)."""


@dataclass(frozen=True)
class ComponentStatus:
    """One component as the supervisor sees it."""

    id: str
    description: str = ""
    state: str = State.STOPPED
    pid: int | None = None
    uptime_s: float | None = None
    rss_bytes: int | None = None          # the tree's RSS: shared pages once per process
    pss_bytes: int | None = None          # proportional set size: shared pages divided among their users
    uss_bytes: int | None = None          # pages no other process maps
    restarts: int = 0
    last_exit: str | None = None
    message: str = ""
    health: str | None = None              # "healthy" | "unhealthy" | "starting" | None (no check)
    health_failures: int = 0
    last_health_error: str | None = None
    restart_reason: str | None = None      # "crash" | "unhealthy: …" | "max_memory" | "operator" | "reload"
    held: bool = False                     # held down by the operator's `stop ID`


@dataclass(frozen=True)
class SupervisorStatus:
    """The Server Supervisor itself."""

    state: str = State.STOPPED
    pid: int | None = None
    uptime_s: float | None = None
    rss_bytes: int | None = None
    pss_bytes: int | None = None
    uss_bytes: int | None = None
    socket: str | None = None              # absolute path of the control socket (SPEC §2)
    config_digest: str | None = None       # sha256 of the effective configuration


@dataclass(frozen=True)
class AgentStatus:
    """What `imageserving status --json` prints.

    `source` is the decoded document it was parsed from (parse_status), kept so the fleet can
    pass on what the host said field for field, those of newer agents too (`document()`).
    """

    host: str
    agent_version: str
    time: str
    supervisor: SupervisorStatus
    components: tuple[ComponentStatus, ...] = ()
    message: str = ""
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    source: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def component(self, cid: str) -> ComponentStatus | None:
        return next((c for c in self.components if c.id == cid), None)

    def down(self, named: bool = False) -> list[ComponentStatus]:
        """The components that count as down (componentstate.is_down); named: the status named them."""
        return [c for c in self.components if is_down(c.state, c.held, named)]

    @property
    def held(self) -> list[str]:
        """Ids of the components the operator holds down, not running (no fault of the host)."""
        return [c.id for c in self.components if is_held(c.state, c.held)]

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": self.schema, "host": self.host, "agent_version": self.agent_version,
            "time": self.time, "supervisor": _drop_none(asdict(self.supervisor)),
            "components": [asdict(c) for c in self.components], "message": self.message,
        }
        return doc

    def document(self) -> dict[str, Any]:
        """The JSON document: as the host sent it when parsed from one, else built (to_dict())."""
        return self.source if self.source is not None else self.to_dict()


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _typed(d: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    value = d.get(name, default)
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        # json.loads takes Infinity, NaN and 400-digit integers; no pid, uptime or size is one.
        if (isinstance(value, float) and not math.isfinite(value)) or (
                isinstance(value, int) and not -2**63 <= value < 2**63):
            raise SchemaError(f"{where}.{name}: out of range, got {str(value):.40}")
        return value
    raise SchemaError(f"{where}.{name}: expected {getattr(kind, '__name__', kind)}, got {value!r:.40}")


def _component(d: Any, i: int) -> ComponentStatus:
    where = f"components[{i}]"
    if not isinstance(d, dict) or not isinstance(d.get("id"), str):
        raise SchemaError(f"{where}: expected an object with an id")
    state = d.get("state", State.STOPPED)
    if state not in STATES:
        raise SchemaError(f"{where}.state: unknown state {state!r:.40}")
    return ComponentStatus(
        id=d["id"], description=str(d.get("description") or ""), state=state,
        pid=_typed(d, "pid", int, None, where),
        uptime_s=_typed(d, "uptime_s", (int, float), None, where),
        rss_bytes=_typed(d, "rss_bytes", int, None, where),
        pss_bytes=_typed(d, "pss_bytes", int, None, where),
        uss_bytes=_typed(d, "uss_bytes", int, None, where),
        restarts=_typed(d, "restarts", int, 0, where) or 0,
        last_exit=None if d.get("last_exit") is None else str(d["last_exit"]),
        message=str(d.get("message") or ""),
        health=_optional_text(d, "health"),
        health_failures=_typed(d, "health_failures", int, 0, where) or 0,
        last_health_error=_optional_text(d, "last_health_error"),
        restart_reason=_optional_text(d, "restart_reason"),
        held=d.get("held") is True,
    )


def _optional_text(d: dict[str, Any], key: str) -> str | None:
    value = d.get(key)
    return None if value is None else str(value)


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    return "" if value is None else str(value)


def parse_status(doc: Any) -> AgentStatus:
    """Takes decoded JSON; returns an AgentStatus or raises SchemaError saying what is wrong."""
    if not isinstance(doc, dict):
        raise SchemaError("status is not a JSON object")
    if type(doc.get("schema")) is not int or doc.get("schema") != SCHEMA:  # true == 1 in Python
        raise SchemaError(f"unsupported status schema {doc.get('schema')!r:.20} (expected {SCHEMA})")
    sup = doc.get("supervisor")
    if not isinstance(sup, dict) or sup.get("state") not in STATES:
        raise SchemaError("supervisor: expected an object with a known state")
    comps = doc.get("components", [])
    if not isinstance(comps, list):
        raise SchemaError("components: expected a list")
    known = {"schema", "host", "agent_version", "time", "supervisor", "components", "message"}
    return AgentStatus(
        host=_text(doc, "host"), agent_version=_text(doc, "agent_version"), time=_text(doc, "time"),
        supervisor=SupervisorStatus(
            state=sup["state"], pid=_typed(sup, "pid", int, None, "supervisor"),
            uptime_s=_typed(sup, "uptime_s", (int, float), None, "supervisor"),
            rss_bytes=_typed(sup, "rss_bytes", int, None, "supervisor"),
            pss_bytes=_typed(sup, "pss_bytes", int, None, "supervisor"),
            uss_bytes=_typed(sup, "uss_bytes", int, None, "supervisor"),
            socket=_typed(sup, "socket", str, None, "supervisor"),
            config_digest=_typed(sup, "config_digest", str, None, "supervisor"),
        ),
        components=tuple(_component(c, i) for i, c in enumerate(comps)),
        message=str(doc.get("message") or ""),
        extra={k: v for k, v in doc.items() if k not in known},
        source=doc,
    )
