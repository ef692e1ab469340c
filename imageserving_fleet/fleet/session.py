"""One fleet run's setup, shared by every command: inventory, selected targets, connector, pool.

Built from the parsed CLI options; every failure before a host is contacted raises an
InventoryError (exit 1) or UsageError (exit 5), never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .ansiblecfg import load_ansible_config
from .inventory import Inventory, default_inventory, load_inventory, select
from .requirements import modules_for, require
from .results import HostResult
from .runner import Fleet, Interrupted, Job
from .runwide import DEFAULT_FORKS, CommandLine, RunWide, resolve_run
from .runwide import DEFAULT_INVENTORY as DEFAULT_INVENTORY_PATH
from .ssh import Connector
from .ssh.settings import Secret
from .target import FleetOptions, Target, make_target

if TYPE_CHECKING:
    from .cluster.address import ClusterAddress
    from .cluster.fanout import ClusterFleet

DEFAULT_INVENTORY = Path(DEFAULT_INVENTORY_PATH)
STATUS_TIMEOUT = 30.0       # status, ping: a few hundred ms is normal; 30 s is a dead host
ACTION_TIMEOUT = 300.0      # start, stop, restart: stop_timeout (60 s) twice, and readiness
ONE_JOB_COMMANDS = ("status", "ping", "start", "stop", "report")  # one command per host: no connection to keep

# Given the number of hosts: (called once per host done, or None; called to take the bar down)
Progress = Callable[[int], tuple[Callable[[HostResult], None] | None, Callable[[], None]]]
# A command's work beyond one job (rolling restart, deploy): the fleet and the targets -> results
Work = Callable[[Fleet, Sequence[Target]], list[HostResult]]


@dataclass
class RunSettings:
    """What the global options say, before anything is read or contacted."""

    inventories: list[str] = field(default_factory=list)
    limit: str | None = None
    forks: int = DEFAULT_FORKS
    timeout: float | None = None
    options: FleetOptions = field(default_factory=FleetOptions)
    as_json: bool = False
    quiet: bool = False
    ask_become_pass: bool = False
    cluster: str | None = None  # --cluster, else IMAGESERVING_CLUSTER (§8)
    playbook_dir: str | None = None  # group_vars/ and host_vars/ here are read too (the current directory)
    wide: RunWide | None = None  # the run-wide settings with their sources (resolve())

    @classmethod
    def resolve(cls, cli: CommandLine, *, user: str | None = None, private_key: str | None = None,
                ssh_config: str | None = None, become: bool = False, ask_pass: bool = False,
                env: Mapping[str, str] | None = None, cwd: str | None = None, **rest: Any) -> RunSettings:
        """The command line, IMAGESERVING_*, ANSIBLE_* and ansible.cfg, merged once, at the edge."""
        env = os.environ if env is None else env
        cwd = os.getcwd() if cwd is None else cwd
        ansible = load_ansible_config(env, cwd)
        run = resolve_run(cli, env, ansible, cwd)
        password, password_source = None, "command line -k"
        if ansible.become_ask_pass is not None and ansible.become_ask_pass.value:
            rest["ask_become_pass"] = True
        if not ask_pass and env.get("IMAGESERVING_SSH_PASS"):
            password, password_source = Secret(env["IMAGESERVING_SSH_PASS"]), "env IMAGESERVING_SSH_PASS"
        elif ask_pass or (ansible.ask_pass is not None and ansible.ask_pass.value):
            import getpass

            if not ask_pass and ansible.ask_pass is not None:
                password_source = f"prompt ({ansible.ask_pass.source})"
            password = Secret(getpass.getpass("SSH password: "))  # once per run, whatever the hosts
        options = FleetOptions(user=user, private_key=private_key, ssh_config=ssh_config,
                               host_key_policy=run.host_key_policy.value,
                               host_key_policy_source=run.host_key_policy.source,
                               connect_timeout=run.connect_timeout.value,
                               become=become, password=password, password_source=password_source, ansible=ansible)
        return cls(inventories=list(run.inventories.value), forks=run.forks.value, options=options, wide=run,
                   playbook_dir=cwd, **rest)

    def inventory_paths(self) -> list[str]:
        if self.inventories:
            return self.inventories
        env = os.environ.get("IMAGESERVING_INVENTORY")
        if env:
            return [p for p in env.split(os.pathsep) if p]
        return [str(DEFAULT_INVENTORY)] if DEFAULT_INVENTORY.exists() else []

    def load(self) -> Inventory:
        paths = self.inventory_paths()
        return load_inventory(paths, self.playbook_dir) if paths else default_inventory()

    def targets(self) -> list[Target]:
        """The matched hosts, in inventory order, as connection targets."""
        inventory = self.load()
        hosts = select(inventory, self.limit) if self.limit else list(inventory.hosts)
        return [make_target(h.name, h.vars, self.options, h.origins) for h in hosts]

    def deadline_for(self, command: str) -> float:
        if self.timeout is not None:
            if not 0 < self.timeout <= 10**7:  # nan too; inf overflowed the deadline arithmetic
                raise UsageError(f"--timeout must be a number of seconds above 0, got {self.timeout!r}")
            return self.timeout
        return STATUS_TIMEOUT if command in ("status", "ping", "report") else ACTION_TIMEOUT

    def cluster_address(self) -> ClusterAddress | None:
        text = self.cluster if self.cluster is not None else os.environ.get("IMAGESERVING_CLUSTER")
        if not text:
            return None
        from .cluster.address import parse_address

        return parse_address(text)

    def become_password(self, targets: Sequence[Target]) -> str | None:
        """From IMAGESERVING_BECOME_PASS or a prompt (-K); never from argv."""
        if not any(t.become for t in targets):
            return None
        env = os.environ.get("IMAGESERVING_BECOME_PASS")
        if env:
            return env
        if self.ask_become_pass:
            import getpass

            return getpass.getpass("BECOME password: ")
        return None

    def fleet(self, command: str, targets: Sequence[Target],
              on_result: Callable[[HostResult], None] | None = None) -> Fleet | ClusterFleet:
        if self.forks < 1:
            raise UsageError(f"--forks must be at least 1, got {self.forks}")
        address = self.cluster_address()
        if address is not None:  # the hosts' work goes to the workers (cluster/); dask only from here
            from .cluster.connect import cluster_fleet

            return cluster_fleet(self, address, command, targets, on_result)
        require(modules_for(targets))  # once, before any host: not one "internal error" per host
        _raise_fd_limit(len(targets))
        connector = Connector(self.options)
        try:
            connector.check(targets)  # a bad ssh_config Port or ProxyJump: exit 1 before any host
        except BaseException:
            connector.close()
            raise
        return Fleet(connector, forks=self.forks, timeout=self.deadline_for(command),
                     become_password=self.become_password(targets), on_result=on_result,
                     keep_sessions=command not in ONE_JOB_COMMANDS)

    def run(self, command: str, targets: Sequence[Target], work: Job | Work,
            progress: Progress | None = None) -> tuple[list[HostResult], bool]:
        """Runs one fleet command on the targets: the fleet, the bar, Ctrl-C, closing everything.

        Returns (one result per target, whether Ctrl-C cut the run short: then some are partial).
        Every command goes through here: status, start, stop, restart, ping, deploy and report.
        """
        with self.fleet(command, targets) as fleet:  # may refuse options or prompt (-K): before the bar
            advance, stop = progress(len(targets)) if progress else (None, lambda: None)
            fleet.on_result = advance
            try:
                # A ClusterFleet has Fleet's run(), on_result and timeout: all that rolling restarts use.
                results = fleet.run(targets, work) if isinstance(work, Job) else work(fleet, targets)  # type: ignore[arg-type]
            except Interrupted as exc:
                return exc.results, True
            finally:
                stop()
        return results, False


def _raise_fd_limit(hosts: int) -> None:
    """Several fds per connection: lift the soft limit to the hard one (parallel-ssh#311)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
