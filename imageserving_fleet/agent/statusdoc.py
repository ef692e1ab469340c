"""The status document (schema 1) of a running supervisor, built once per request from typed parts.

The supervisor hands over its records and a memory sampler; this returns schema.AgentStatus, the
same dataclasses the fleet parses, so both sides agree on one shape.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

from .. import __version__
from ..schema import AgentStatus, ComponentStatus, SupervisorStatus
from ..timefmt import utc_stamp
from .config import ComponentConfig
from .memory import Memory
from .states import ACTIVE, Proc, State


def component_status(comp: ComponentConfig, p: Proc, mem: Memory | None, now: float) -> ComponentStatus:
    """Takes a component's config, record, sampled memory and the monotonic time; returns its status."""
    since = p.running_since if p.state == State.RUNNING else (
        p.spawned_at if p.state in ACTIVE and p.pid else None)
    return ComponentStatus(
        id=comp.id, description=comp.description, state=str(p.state), pid=p.pid,
        uptime_s=round(now - since, 1) if since is not None else None,
        rss_bytes=mem.rss if mem and p.pid else None,
        pss_bytes=mem.pss if mem and p.pid else None, uss_bytes=mem.uss if mem and p.pid else None,
        restarts=p.restarts, last_exit=p.last_exit, message=p.message,
        health=p.health if comp.health is not None and p.state == State.RUNNING else (
            "starting" if comp.health is not None and p.state == State.STARTING else None),
        health_failures=p.health_failures, last_health_error=p.last_health_error,
        restart_reason=p.restart_reason, held=p.held,
    )


def status_doc(components: Iterable[ComponentStatus], *, started: float, now: float, memory: Memory | None,
               socket_path: str, config_digest: str) -> AgentStatus:
    """The whole document; the wall clock is read here only for the `time` a person reads."""
    return AgentStatus(
        host=socket.gethostname(), agent_version=__version__,
        time=utc_stamp(),
        supervisor=SupervisorStatus(state=State.RUNNING, pid=os.getpid(), uptime_s=round(now - started, 1),
                                    rss_bytes=memory.rss if memory else None,
                                    pss_bytes=memory.pss if memory else None,
                                    uss_bytes=memory.uss if memory else None,
                                    socket=socket_path, config_digest=config_digest),
        components=tuple(components),
    )
