"""Running one command's work on the run's fan-out, and opening that fan-out.

    open_fanout(ctx) -> FanOut                  the in-process Fleet, a ClusterFleet (--cluster), or a
                                                HolderFleet (the user's connection holder, --persist)
    execute(ctx, fanout, job or work) -> Outcome    Ctrl-C gives a partial Outcome, never an exception
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..context import Command, RunContext
from ..fanout import FanOut, Interrupted
from ..fdlimit import raise_fd_limit as _raise_fd_limit
from ..jobs import Job
from ..requirements import modules_for, require
from ..results import EXIT_INTERRUPTED, HostResult, exit_code, summarize
from ..runner import Fleet
from ..target import Target

# A command's work beyond one job (rolling restart, deploy): the fan-out and the targets -> results
Work = Callable[[FanOut, Sequence[Target]], list[HostResult]]


@dataclass(frozen=True)
class Outcome:
    """What one run gave: a result per target in inventory order; whether Ctrl-C cut it short."""

    command: Command
    results: tuple[HostResult, ...]
    interrupted: bool = False
    batches: tuple[tuple[str, ...], ...] | None = None  # a rolling run's plan (--json's "batches")

    @property
    def exit_code(self) -> int:
        """The hosts' exit code (SPEC §3); 99 when interrupted (the report is partial)."""
        return EXIT_INTERRUPTED if self.interrupted else exit_code(summarize(self.results))


def local_fleet(ctx: RunContext, on_result: Callable[[HostResult], None] | None = None) -> Fleet:
    """The in-process fan-out; checks once, before any host, that its modules import."""
    require(modules_for(ctx.targets))  # not one "internal error" per host
    _raise_fd_limit(len(ctx.targets))
    from ..ssh import Connector  # the SSH library only for a command that connects itself

    connector = Connector(ctx.ssh)
    try:
        connector.check(ctx.targets)  # a bad ssh_config Port or ProxyJump: exit 1 before any host
    except BaseException:
        connector.close()
        raise
    return Fleet(connector, forks=ctx.forks, timeout=ctx.timeout, become_password=ctx.become_password,
                 on_result=on_result, keep_sessions=ctx.command.keep_sessions)


def open_fanout(ctx: RunContext, on_result: Callable[[HostResult], None] | None = None) -> FanOut:
    """The run's fan-out: a ClusterFleet when the context has a cluster; through the user's connection
    holder when --persist allows it (§9; a become or SSH password stays in the command that asked
    for it, which then runs direct); else the in-process Fleet."""
    if ctx.cluster is not None:  # the hosts' work goes to the workers (cluster/); dask only from here
        from ..cluster.connect import cluster_fleet

        return cluster_fleet(ctx, on_result)
    secret = ctx.become_password is not None or any(t.password is not None for t in ctx.targets)
    if ctx.persist > 0 and ctx.command.through_holder and not secret:
        from ..persist.client import HolderFleet

        return HolderFleet(ctx.ssh, forks=ctx.forks, timeout=ctx.timeout, persist=ctx.persist, on_result=on_result,
                           direct=lambda: local_fleet(ctx))
    return local_fleet(ctx, on_result)


def execute(ctx: RunContext, fanout: FanOut, work: Job | Work, targets: Sequence[Target] | None = None) -> Outcome:
    """Runs one command's work on the targets (default: the context's) over `fanout`.

    On Ctrl-C the Outcome is `interrupted` and its results partial (each host says what became of it).
    """
    hosts = ctx.targets if targets is None else tuple(targets)
    try:
        results = fanout.run(hosts, work) if isinstance(work, Job) else work(fanout, hosts)
    except Interrupted as exc:
        return Outcome(ctx.command, tuple(exc.results), interrupted=True)
    return Outcome(ctx.command, tuple(results))
