"""ClusterFleet: runner.Fleet's run(), with the hosts' work done by the workers of a dask cluster.

The controller reads the inventory, places the hosts (placement.py), sends shards (shard.py)
and merges what comes back, shard by shard as they finish, through the same on_result the
progress bar listens to. It never talks SSH itself: its own cost per host is a share of one
task's round trip. What happens to the hosts of a worker lost mid-run is the command's policy
(policy.py). Ctrl-C cancels the shards not finished and raises fanout.Interrupted with the
partial results, as the in-process fan-out does (both are fanout.FanOut).
"""

from __future__ import annotations

import logging
import math
import queue
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from distributed import Client, Event, Future
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from ...errors import ClusterError
from ..fanout import cut_short
from ..jobs import Job
from ..results import HostResult, Result
from ..target import FleetOptions, Target
from .address import ClusterAddress, Kind
from .placement import no_worker_reason, place, resources_for, shard_size
from .policy import ASK_AGAIN_LIMIT, WORKER_LOST, OnLostWorker, on_lost_worker
from .shard import Secret, Shard, run_shard, worker_lost

CONNECT_TIMEOUT = 15.0   # seconds to reach a scheduler before the run is refused (exit 1)
POLL = 0.5               # seconds between checks that outstanding shards still have a worker
SHARD_GRACE = 15.0       # seconds a shard may take beyond --timeout (queueing, connecting to the scheduler)
KEY_PREFIX = "imageserving"


TLS_SETTINGS = {  # dask's own configuration keys, and the variables that set them
    "distributed.comm.tls.ca-file": "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "distributed.comm.tls.client.cert": "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
    "distributed.comm.tls.client.key": "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
}


def _check_tls_config(address: ClusterAddress) -> None:
    """A tls:// scheduler needs our CA and client certificate from dask's configuration: say which."""
    import dask

    missing = [env for key, env in TLS_SETTINGS.items() if key != "distributed.comm.tls.client.key"
               and not dask.config.get(key, None)]
    if missing:
        raise ClusterError(f"--cluster {address}: set {' and '.join(missing)} (and the client key, if not in the "
                           "certificate file) or dask's distributed.comm.tls settings: see README, Cluster")


class ClusterFleet:
    """Runs jobs on targets through a dask cluster; same run() as runner.Fleet."""

    def __init__(self, address: ClusterAddress, options: FleetOptions, *, forks: int, timeout: float,
                 become_password: str | None = None, on_result: Callable[[HostResult], None] | None = None,
                 keep_sessions: bool = False, persist: float = 0.0) -> None:
        if become_password is not None and not address.encrypted:
            # The runner refuses this before anything is contacted too; this is the last line.
            raise ClusterError(f"a become password goes only to a tls:// cluster, not {address}")
        self.address, self.options = address, options
        self.forks, self.timeout = max(1, forks), timeout
        self._password = Secret(become_password) if become_password is not None else None
        self.on_result = on_result
        self.keep_sessions = keep_sessions
        self.persist = persist  # > 0: workers keep connections this long unused (workerpool.py)
        self._client: Client | None = None
        self._local: Any = None

    # ---------------------------------------------------------------- the cluster
    def client(self, hosts: int = 0) -> Client:
        if self._client is not None:
            return self._client
        try:
            if self.address.kind is Kind.LOCAL:
                from distributed import LocalCluster

                # --forks stays the number of hosts worked on at once, over all the local workers.
                workers = self.address.workers
                threads = max(1, math.ceil(self.forks / (workers * shard_size(hosts, workers, self.forks))))
                import dask

                # Workers that keep connections (--persist): a shard stays on its home worker, where
                # its hosts' connections are; the scheduler's work stealing would move it away.
                with dask.config.set({"distributed.scheduler.work-stealing": self.persist <= 0}):
                    self._local = LocalCluster(n_workers=workers, threads_per_worker=threads,
                                               processes=True, host="127.0.0.1", dashboard_address=None,
                                               silence_logs=logging.ERROR)
                self._client = Client(self._local, set_as_default=False)
            else:
                if self.address.encrypted:
                    _check_tls_config(self.address)
                self._client = Client(self.address.url, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:  # TypeError: dask's "TLS expects..."

            self.close()
            raise ClusterError(f"--cluster {self.address}: cannot reach the scheduler: {exc}") from None
        return self._client

    def _offered(self) -> tuple[int, int, set[str]]:
        """The number of workers, their threads in all, and the resource names at least one offers."""
        workers = self._workers()
        names = {name for w in workers.values() for name, qty in (w.get("resources") or {}).items() if qty > 0}
        return len(workers), sum(int(w.get("nthreads") or 1) for w in workers.values()), names

    def _workers(self) -> dict[str, Any]:
        return dict(self.client().scheduler_info(n_workers=-1).get("workers", {}))

    def _home_worker(self, shard: Shard, resource: str | None, workers: dict[str, Any]) -> str | None:
        """The worker a shard goes to round after round, where its hosts' kept connections are.

        A stable choice among the workers that can take it (by the shard's first host), so a
        watch or an exporter finds each host's connection where it left it; None: any worker.
        """
        able = sorted(addr for addr, w in workers.items()
                      if resource is None or (w.get("resources") or {}).get(resource, 0) > 0)
        if not able or not shard.targets:
            return None
        return able[zlib.crc32(shard.targets[0].name.encode()) % len(able)]

    # ---------------------------------------------------------------- one run
    def run(self, targets: Sequence[Target], job: Job, timeout: float | None = None) -> list[HostResult]:
        """Runs the job on every target through the cluster; returns results in the targets' order.

        Raises Interrupted (with the partial results) on Ctrl-C.
        """
        limit = self.timeout if timeout is None else timeout
        client = self.client(len(targets))
        results: dict[str, HostResult] = {}

        def finish(res: HostResult) -> None:
            if res.host in results:
                return
            results[res.host] = res if res.clustered else replace(res, clustered=True)  # worker: null
            if self.on_result:
                self.on_result(res)

        if self.address.kind is Kind.LOCAL:  # one machine has no regions: placement labels do not apply
            targets = [replace(t, worker=None) if t.worker else t for t in targets]
        known = self._workers() if self.persist > 0 else {}
        workers, threads, offered = self._offered()
        if workers == 0:
            for t in targets:
                finish(HostResult(t.name, Result.UNREACHABLE, f"no worker is connected to {self.address}"))
            return [results[t.name] for t in targets]
        placement = place(targets, offered, shard_size(len(targets), workers, self.forks))
        for res in placement.unplaceable:
            finish(res)
        policy = on_lost_worker(job.kind)
        # A shard's hosts all start at once (a shard is at most --forks hosts), so once a worker takes
        # it, it answers within --timeout. A worker that is alive but stuck would hold the run forever:
        # past this, the shards still out are answered here (a hung worker is not a lost one to dask).
        waves = math.ceil(len(placement.shards) / max(1, threads)) + 1
        run_deadline = time.monotonic() + waves * (limit + SHARD_GRACE)
        run_id = uuid.uuid4().hex[:12]
        outstanding: dict[Future, tuple[Shard, str | None, int]] = {}  # future -> shard, resource, attempt
        claims: list[str] = []

        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()  # fed from the client's event loop

        def submit(shard: Shard, resource: str | None, attempt: int) -> None:
            key = f"{KEY_PREFIX}-{job.kind.value}-{run_id}-{shard.index}-{attempt}"
            home = self._home_worker(shard, resource, known) if attempt == 1 and known else None
            future = client.submit(run_shard, shard, key=key, resources=resources_for(resource), pure=False,
                                   workers=[home] if home else None, allow_other_workers=home is not None)
            outstanding[future] = (shard, resource, attempt)
            future.add_done_callback(finished.put)

        try:
            for index, (resource, hosts) in enumerate(placement.shards):
                claim = f"{KEY_PREFIX}-claim-{run_id}-{index}" if policy is OnLostWorker.FAIL else None
                if claim:
                    claims.append(claim)
                submit(Shard(index, hosts, self.options, job, limit, self.forks, self._password, claim, self.persist),
                       resource, 1)
            next_check = time.monotonic() + POLL
            while outstanding:
                try:
                    done = [finished.get(timeout=POLL)]
                except queue.Empty:
                    done = []
                for future in done:
                    if future not in outstanding:
                        continue  # cancelled by a check below, or a late callback
                    shard, resource, attempt = outstanding.pop(future)
                    again = self._collect(future, shard, policy, attempt)
                    if again is None:
                        submit(shard, resource, attempt + 1)
                        continue
                    for res in again:
                        finish(res)
                if time.monotonic() >= next_check:
                    self._strand_check(outstanding, finish)
                    next_check = time.monotonic() + POLL
                if outstanding and time.monotonic() >= run_deadline:
                    self._overdue(outstanding, policy, waves * (limit + SHARD_GRACE), finish)
        except KeyboardInterrupt:
            raise cut_short(targets, results, self._interrupt(outstanding), finish) from None
        finally:
            self._clear(claims)
        return [results[t.name] for t in targets]

    def _collect(self, future: Future, shard: Shard, policy: OnLostWorker, attempt: int) -> list[HostResult] | None:
        """A finished shard's results; None: it was lost and is to be asked again (its command allows it)."""
        try:
            return list(future.result())
        except (KilledWorker, FutureCancelledError) as exc:
            if policy is OnLostWorker.ASK_AGAIN and attempt < ASK_AGAIN_LIMIT:
                return None
            why = WORKER_LOST if policy is OnLostWorker.FAIL else f"worker lost {attempt} times: {type(exc).__name__}"
            return [replace(r, reason=why) for r in worker_lost(shard.targets)]
        except Exception as exc:  # a worker without our package, a bug: costs this shard, not the run
            return [HostResult(t.name, Result.FAILED, f"worker error: {type(exc).__name__}: {str(exc)[:200]}")
                    for t in shard.targets]

    def _strand_check(self, outstanding: dict[Future, tuple[Shard, str | None, int]],
                      finish: Callable[[HostResult], None]) -> None:
        """Shards whose resource went away with its last worker are answered now, not left queued."""
        pinned = {resource for _, resource, _ in outstanding.values() if resource is not None}
        if not pinned and self.client().status == "running":
            return
        if self.client().status != "running":
            for future, (shard, _, _) in list(outstanding.items()):
                outstanding.pop(future)
                for t in shard.targets:
                    finish(HostResult(t.name, Result.UNREACHABLE, f"lost the scheduler at {self.address}"))
            return
        _, _, offered = self._offered()
        for future, (shard, resource, _) in list(outstanding.items()):
            if resource is None or resource in offered:
                continue
            outstanding.pop(future)
            future.cancel()
            started = shard.claim is not None and Event(shard.claim, client=self.client()).is_set()
            for t in shard.targets:
                finish(HostResult(t.name, Result.FAILED, WORKER_LOST) if started
                       else HostResult(t.name, Result.UNREACHABLE, no_worker_reason(resource)))

    def _overdue(self, outstanding: dict[Future, tuple[Shard, str | None, int]], policy: OnLostWorker,
                 waited: float, finish: Callable[[HostResult], None]) -> None:
        """The run's bound passed: what is still out is cancelled and answered, never waited on longer."""
        self.client().cancel(list(outstanding))
        for shard, _, _ in outstanding.values():
            for t in shard.targets:
                if policy is OnLostWorker.ASK_AGAIN:
                    finish(HostResult(t.name, Result.UNREACHABLE, f"timeout: no answer from a worker within {waited:g}s"))
                else:
                    finish(HostResult(t.name, Result.FAILED, f"no answer from its worker within {waited:g}s; "
                                                             "state unknown"))
        outstanding.clear()

    def _interrupt(self, outstanding: dict[Future, tuple[Shard, str | None, int]]) -> list[str]:
        """Ctrl-C: cancels every outstanding shard; returns the hosts of those a worker had begun."""
        client = self.client()
        try:
            running = {key for keys in client.processing().values() for key in keys}
        except Exception:
            running = {future.key for future in outstanding}
        client.cancel(list(outstanding))
        begun = [t.name for future, (shard, _, _) in outstanding.items() if future.key in running
                 for t in shard.targets]
        outstanding.clear()
        return begun

    def _clear(self, claims: list[str]) -> None:
        """Drops the run's claims from the scheduler (a set Event stays there until cleared)."""
        if self._client is None or self._client.status != "running":
            return
        for claim in claims:
            try:
                Event(claim, client=self._client).clear()
            except Exception:
                pass

    # ---------------------------------------------------------------- the end
    def close(self) -> None:
        client, local, self._client, self._local = self._client, self._local, None, None
        for thing in (client, local):
            if thing is not None:
                try:
                    thing.close()
                except Exception:
                    pass

    def __enter__(self) -> ClusterFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
