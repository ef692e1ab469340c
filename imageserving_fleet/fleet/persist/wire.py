"""What the client and the holder say to each other: length-prefixed JSON frames. Pure but for I/O on a socket.

    frame          4-byte big-endian length, then that many bytes of UTF-8 JSON (one object)
    client ->      {"v": 1, "op": "run", "persist": S, "options": {...}, "forks": F, "timeout": T,
                    "job": {...}, "targets": [{...}, ...]}
                   {"v": 1, "op": "stop"} | {"v": 1, "op": "ping"}
    holder ->      {"started": NAME}          a host's work began (so a lost holder's hosts are told apart)
                   {"result": {...}}          one host's HostResult, as soon as it is known
                   {"warn": TEXT}             what a command would have printed on stderr (host keys)
                   {"done": true} | {"error": TEXT} | {"ok": true, "pid": PID}

A job is data (its kind, the agent's arguments, its stdin): a deploy job, whose work is a function
of the controller's, is never sent.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
from typing import Any

from ...errors import HolderError
from ...schema import parse_status
from ..jobs import Job, Kind
from ..results import HostResult, Result, Via
from ..target import FleetOptions, Target
from .thin import peer_uid  # noqa: F401 - one home (thin.py, which must stay light); the holder and client read it here

VERSION = 1
MAX_FRAME = 64 * 2**20      # a 5,000-host request or a status document with its logs fits easily
_HEADER = struct.Struct(">I")


class WireError(HolderError):
    """A frame that is not one: too long, not JSON, cut short, or a field of the wrong kind."""


# ------------------------------------------------------------------ frames
def frame(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode()
    if len(data) > MAX_FRAME:
        raise WireError(f"frame of {len(data)} bytes is over {MAX_FRAME}")
    return _HEADER.pack(len(data)) + data


def send(sock: socket.socket, obj: dict[str, Any]) -> None:
    sock.sendall(frame(obj))


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("closed")
        buf += chunk
    return bytes(buf)


def receive(sock: socket.socket) -> dict[str, Any]:
    """The next frame; raises EOFError when the peer closed, WireError on a bad frame, OSError/TimeoutError."""
    (size,) = _HEADER.unpack(_read_exact(sock, _HEADER.size))
    if size > MAX_FRAME:
        raise WireError(f"frame of {size} bytes announced, over {MAX_FRAME}")
    try:
        obj = json.loads(_read_exact(sock, size))
    except (ValueError, RecursionError) as exc:
        raise WireError(f"frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("frame is not a JSON object")
    return obj


# ------------------------------------------------------------------ settings and targets
def options_doc(options: FleetOptions) -> dict[str, Any]:
    return {"user": options.user, "private_key": options.private_key, "ssh_config": options.ssh_config,
            "host_key_policy": options.host_key_policy, "connect_timeout": options.connect_timeout,
            "become": options.become}


def options_from(doc: Any) -> FleetOptions:
    try:
        return FleetOptions(user=doc["user"], private_key=doc["private_key"], ssh_config=doc["ssh_config"],
                            host_key_policy=doc["host_key_policy"], connect_timeout=float(doc["connect_timeout"]),
                            become=bool(doc["become"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad options: {exc}") from None


def target_doc(t: Target) -> dict[str, Any]:
    return {"name": t.name, "hostname": t.hostname, "port": t.port, "user": t.user, "key_file": t.key_file,
            "connection": t.connection, "common_args": list(t.common_args), "become": t.become,
            "become_user": t.become_user, "agent_command": t.agent_command, "venv": t.venv, "home": t.home,
            "config": t.config, "port_explicit": t.port_explicit, "worker": t.worker,
            "ssh_args": [[key, list(values)] for key, values in t.ssh_args]}


def target_from(doc: Any) -> Target:
    try:
        return Target(
            name=str(doc["name"]), hostname=str(doc["hostname"]), port=int(doc["port"]), user=doc["user"],
            key_file=doc["key_file"], connection=str(doc["connection"]),
            common_args=tuple(str(a) for a in doc["common_args"]), become=bool(doc["become"]),
            become_user=doc["become_user"], agent_command=doc["agent_command"], venv=str(doc["venv"]),
            home=doc["home"], config=doc["config"], port_explicit=bool(doc["port_explicit"]), worker=doc["worker"],
            ssh_args=tuple((str(key), tuple(str(v) for v in values)) for key, values in doc["ssh_args"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad target: {exc}") from None


# ------------------------------------------------------------------ jobs
def sendable(job: Job) -> bool:
    """Whether a job can go through the holder: an agent command (data), not a deploy step (a function)."""
    return job.step is None


def job_doc(job: Job) -> dict[str, Any]:
    return {"kind": job.kind.value, "args": list(job.args),
            "stdin": base64.b64encode(job.stdin).decode() if job.stdin is not None else None}


def job_from(doc: Any) -> Job:
    try:
        kind = Kind(doc["kind"])
        if kind is Kind.DEPLOY:
            raise ValueError("a deploy step does not go through the holder")
        stdin = base64.b64decode(doc["stdin"], validate=True) if doc["stdin"] is not None else None
        return Job(kind, tuple(str(a) for a in doc["args"]), stdin=stdin)
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad job: {exc}") from None


# ------------------------------------------------------------------ results
def result_doc(r: HostResult) -> dict[str, Any]:
    """A host's result, every field (a deploy's `deployed` never comes this way: deploy runs direct)."""
    return {"host": r.host, "result": str(r.result), "reason": r.reason,
            "status": r.status.document() if r.status is not None else None, "elapsed_s": r.elapsed_s,
            "agent_version": r.agent_version, "lines": list(r.lines) if r.lines is not None else None,
            "via": str(r.via) if r.via is not None else None}


def result_from(doc: Any) -> HostResult:
    try:
        status = parse_status(doc["status"]) if doc["status"] is not None else None
        lines = doc["lines"]
        if lines is not None and not (isinstance(lines, list) and all(isinstance(x, str) for x in lines)):
            raise TypeError("lines is not a list of strings")
        version = doc["agent_version"]
        return HostResult(str(doc["host"]), Result(doc["result"]), str(doc["reason"]), status,
                          float(doc["elapsed_s"]), agent_version=str(version) if version is not None else None,
                          lines=tuple(lines) if lines is not None else None,
                          via=Via(doc["via"]) if doc["via"] is not None else None)
    except (KeyError, TypeError, ValueError) as exc:  # SchemaError is a ValueError
        raise WireError(f"bad result: {exc}") from None
