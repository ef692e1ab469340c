"""`logs ID[:NAME] -n N [--grep RE] [--since D]`: the last lines of one log from every host.

The agent prints plain lines (`imageserving logs ID -n N`), so any agent version answers a plain
request; --grep and --since are passed to the host's agent, which filters there, so only the
matching lines cross the network. The controller checks both first (a regex that does not
compile, a duration that is not one: exit 5 before any host is contacted), since every host would
refuse them the same way. This reads each host's answer into a HostResult whose `lines` the text
and --json outputs share; `--group` (loggroup.py) folds identical answers.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from ..errors import UsageError
from ..units import parse_duration
from ..untrusted import escape
from .remote import check_id
from .results import AGENT_MISSING, HostResult, Result, fleet_document

MAX_LINES = 10_000
MAX_PATTERN = 1000           # characters of --grep: a pattern, not a file
# NAME in ID:NAME, a key of the component's `logs:` (the agent's own rule: no ':' or '/', no shell meaning)
LOG_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}\Z")


@dataclass(frozen=True)
class LogsRequest:
    """What `logs` asks every host for, checked on the controller."""

    name: str                  # "supervisor", "is" or "is:access"
    lines: int = 20
    grep: str | None = None    # a Python regular expression (the agent's dialect)
    since: str | None = None   # a duration: 90s, 10m, 2h


def check_log_name(text: str) -> str:
    """Takes `supervisor`, `ID` or `ID:NAME`; returns it with the id lower-cased, or raises UsageError."""
    cid, sep, name = text.partition(":")
    if cid.lower() == "supervisor":
        if sep:
            raise UsageError(f"{text!r}: the supervisor has only its own log; ID:NAME is for a component's "
                             "files named in its `logs:` key")
        return "supervisor"
    cid = check_id(cid)
    if not sep:
        return cid
    name = name.lower()
    if not LOG_NAME_RE.match(name):
        raise UsageError(f"invalid log name {name!r} in {text!r}: expected a key of the component's `logs:` "
                         "(letters, digits, ., - and _)")
    return f"{cid}:{name}"


def check_grep(pattern: str) -> str:
    """Takes --grep; returns it, or raises UsageError when it is not a regular expression."""
    if len(pattern) > MAX_PATTERN:
        raise UsageError(f"--grep: the pattern is {len(pattern)} characters long (at most {MAX_PATTERN})")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--grep: not a regular expression: {pattern!r}: {exc}") from None
    return pattern


def check_since(text: str) -> str:
    """Takes --since (90s, 10m, 2h, 1d: the agent's units); returns it, or raises UsageError unless a duration above 0."""
    value = text.strip()
    try:
        if value[-1:] == "d" and value[:-1].replace(".", "", 1).isdigit():
            seconds = float(value[:-1]) * 86400
        else:
            seconds = parse_duration(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise UsageError(f"--since: expected a duration such as 90s, 10m, 2h or 1d, got {text!r}")
    return value


def logs_request(name: str, lines: int = 20, grep: str | None = None, since: str | None = None) -> LogsRequest:
    """Takes the command line's values; returns the checked request or raises UsageError (exit 5)."""
    if not 0 < lines <= MAX_LINES:
        raise UsageError(f"-n must be between 1 and {MAX_LINES}")
    return LogsRequest(check_log_name(name), lines, None if grep is None else check_grep(grep),
                       None if since is None else check_since(since))


def parse_logs(host: str, exit_status: int, stdout: bytes, stderr: bytes, elapsed: float) -> HostResult:
    """Takes what `imageserving logs` did on a host; returns its lines (ok) or why not (failed)."""
    err = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    last = err[-1].removeprefix("imageserving: ")[:300] if err else ""
    if exit_status == AGENT_MISSING:
        return HostResult(host, Result.UNREACHABLE, f"agent missing: {last or 'imageserving not found'}",
                          elapsed_s=elapsed)
    if exit_status != 0:
        return HostResult(host, Result.FAILED, f"logs failed (exit {exit_status})" + (f": {last}" if last else ""),
                          elapsed_s=elapsed)
    lines = stdout.decode(errors="replace").splitlines()[-MAX_LINES:]
    return HostResult(host, Result.OK, "", elapsed_s=elapsed, lines=tuple(lines))


def print_logs(results: Sequence[HostResult], out: TextIO = sys.stdout, err: TextIO = sys.stderr,
               *, raw: bool = False) -> None:
    """Every host's lines in inventory order, `host | line`; hosts without lines say why on stderr.

    A line is a host's text: shown escaped (untrusted.escape), unless `raw` (`logs --raw`) asks for
    it as it came. The reason of a host without lines is escaped either way.
    """
    width = max((len(r.host) for r in results), default=0)
    shown = (lambda line: line) if raw else escape
    for r in results:
        if r.result != Result.OK:
            err.write(f"{r.host.ljust(width)} | {r.result}: {escape(r.reason, tabs=False)}\n")
            continue
        for line in r.lines or ():
            out.write(f"{r.host.ljust(width)} | {shown(line)}\n")
    out.flush()


def logs_document(results: Sequence[HostResult], grouped: bool = False) -> str:
    """--json: the fleet document, each host with its `lines`; with --group also `"groups"` (loggroup.py)."""
    doc = fleet_document("logs", results)
    for entry in doc["hosts"]:
        entry.setdefault("lines", [])
        entry.pop("status", None)
    if grouped:
        from .loggroup import group_results

        doc["groups"] = [g.to_dict() for g in group_results(results)]
    return json.dumps(doc)
