"""Kept connections on a cluster worker: the shards of later runs reuse them (SPEC §8).

    run_kept(targets, job, options, ...) -> list[HostResult]    a shard's fan-out with this worker's kept sessions

One store per worker process (a dask worker runs its tasks in threads of one process), with the
connection holder's rules (persist/holder.py): a session lent to one host's work at a time, kept
under every setting that made it, ssh_config and known_hosts read afresh for each shard so a
reconnect is checked as a new run's would be, and closed after the run's --persist seconds
unused (a reaper thread). The controller sends a host's shards to the same worker round after
round (fanout.py), so a watch or an exporter through a cluster reconnects nothing on its second
round. With --persist 0 a shard's connections end with it, as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence

from ..jobs import Job
from ..results import HostResult
from ..ssh import Connector
from ..ssh.connector import warn_on_stderr
from ..target import FleetOptions, Target

_lock = threading.Lock()
_state: _Store | None = None


class _Store:
    def __init__(self, idle: float) -> None:
        from ..persist.kept import Kept

        self.kept = Kept(idle)
        self.connectors: dict[Hashable, Connector] = {}
        threading.Thread(target=self._reap, name="imageserving-worker-pool", daemon=True).start()

    def _reap(self) -> None:
        while True:
            time.sleep(max(0.5, min(5.0, self.kept.idle / 4)))
            self.kept.reap()

    def connector(self, options: FleetOptions) -> tuple[Hashable, Connector]:
        key = (options.private_key, options.ssh_config, options.host_key_policy, options.connect_timeout)
        with _lock:
            found = self.connectors.get(key)
            if found is None:
                self.connectors[key] = Connector(options)
                return key, self.connectors[key]
        found.refresh()
        return key, found


def store(idle: float) -> _Store:
    """This worker's store; its idle time is the latest shard's --persist."""
    global _state
    with _lock:
        if _state is None:
            _state = _Store(idle)
        _state.kept.idle = idle
        return _state


def run_kept(targets: Sequence[Target], job: Job, options: FleetOptions, *, forks: int, timeout: float,
             persist: float, password: str | None) -> list[HostResult]:
    """A shard's work on this worker, over its kept connections (kept `persist` seconds unused)."""
    from ..persist.holder import HeldFleet

    pool = store(persist)
    key, connector = pool.connector(options)
    fleet = HeldFleet(pool.kept, connector, key, forks=max(1, min(forks, len(targets))), timeout=timeout,
                      on_result=lambda _res: None, started=lambda _name: None, warn=warn_on_stderr,
                      stop=threading.Event(), become_password=password)
    return fleet.run(targets, job)
