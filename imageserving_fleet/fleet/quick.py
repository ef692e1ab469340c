"""`status` and `ping` in their plain form without the full CLI: the commands typed most, started light.

    run(args) -> exit code, or None: not the plain form, let the full CLI (cli.py) take it

The full CLI imports Typer (and pydantic under it) and builds every command before it parses
argv: about 0.2 s of CPU before the first host, which a `status` answered by the connection
holder in a few ms would spend mostly starting. This path reads the same global options (after
main.hoist put them first) and runs the same library calls (RunSettings.run, fleet_document,
render.print_results), so its output is the CLI's. It takes only arguments it fully understands:
anything else (-h, --watch, --cluster, -K, -v, a value it cannot read, an `--opt=value` form) and
any refusal before a host is contacted (a bad inventory, --forks 0) go to the full CLI, which says
it as it always does. The progress bar is the same one (progress.py).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ImageServingError
from .target import HOST_KEY_POLICIES

if TYPE_CHECKING:
    from .results import HostResult
    from .session import RunSettings

_VALUE = {"-i": "inventory", "--inventory": "inventory", "-l": "limit", "--limit": "limit", "-f": "forks",
          "--forks": "forks", "--timeout": "timeout", "--connect-timeout": "connect_timeout", "-u": "user",
          "--user": "user", "--private-key": "private_key", "--ssh-config": "ssh_config",
          "--host-key-policy": "host_key_policy", "--persist": "persist"}
_FLAGS = {"--json": "as_json", "-q": "quiet", "--quiet": "quiet", "-b": "become", "--become": "become"}
_COMMANDS = {"status", "ping"}


@dataclass
class Plan:
    """What a plain `status [ID]` or `ping` asks for."""

    command: str
    component: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    inventories: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)


def parse(args: list[str]) -> Plan | None:
    """Takes hoisted argv; returns the Plan, or None for anything but the plain form."""
    plan = Plan("")
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _FLAGS:
            plan.flags.add(_FLAGS[arg])
        elif arg in _VALUE and i + 1 < len(args):
            key, value = _VALUE[arg], args[i + 1]
            if key == "inventory":
                plan.inventories.append(value)
            elif key in plan.values:
                return None  # given twice: the full CLI's rule decides
            else:
                plan.values[key] = value
            i += 1
        elif not plan.command and arg in _COMMANDS:
            plan.command = arg
        elif plan.command == "status" and plan.component is None and not arg.startswith("-"):
            plan.component = arg
        else:
            return None
        i += 1
    if not plan.command or (plan.command == "ping" and plan.component is not None):
        return None
    if plan.values.get("host_key_policy", "reject") not in HOST_KEY_POLICIES:
        return None
    return plan


def run(args: list[str]) -> int | None:
    """Runs the plain form and returns its exit code; None hands argv to the full CLI untouched."""
    plan = parse(args)
    if plan is None:
        return None
    try:
        from .session import RunSettings
        from .target import FleetOptions

        v = plan.values
        options = FleetOptions(user=v.get("user"), private_key=v.get("private_key"), ssh_config=v.get("ssh_config"),
                               host_key_policy=v.get("host_key_policy", "reject"),
                               connect_timeout=float(v.get("connect_timeout", "10")), become="become" in plan.flags)
        settings = RunSettings(inventories=plan.inventories, limit=v.get("limit"),
                               forks=int(v["forks"]) if "forks" in v else RunSettings.forks,
                               timeout=float(v["timeout"]) if "timeout" in v else None, options=options,
                               as_json="as_json" in plan.flags, quiet="quiet" in plan.flags,
                               persist=float(v["persist"]) if "persist" in v else None)
        from . import remote
        from .runner import Job

        if plan.command == "status":
            job = Job("status", ("status", *([remote.check_id(plan.component)] if plan.component else []), "--json"))
        else:
            job = Job("version", ("--version",))
        targets = settings.targets()
        settings.deadline_for(job.command)
        from .progress import bar

        results, interrupted = settings.run(plan.command, targets, job, lambda n: bar(
            n, quiet=settings.quiet, as_json=settings.as_json))
    except (ValueError, ImageServingError):
        return None  # nothing contacted yet: the full CLI refuses it in its own words
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 99
    return _report(settings, plan.command, results, interrupted)


def _report(settings: RunSettings, command: str, hosts: list[HostResult], interrupted: bool) -> int:
    from .results import EXIT_INTERRUPTED, Result, exit_code, fleet_document, summarize

    code = exit_code(summarize(hosts))
    if settings.as_json:
        sys.stdout.write(json.dumps(fleet_document(command, hosts)) + "\n")
    else:
        shown = [r for r in hosts if r.result != Result.OK] if settings.quiet else hosts
        if shown or not settings.quiet:
            from rich.console import Console

            from .render import print_results

            print_results(Console(highlight=False, width=None if sys.stdout.isatty() else 200), shown)
    sys.stdout.flush()
    if interrupted:
        sys.stderr.write("interrupted: the report above is partial\n")
        return EXIT_INTERRUPTED
    return code
