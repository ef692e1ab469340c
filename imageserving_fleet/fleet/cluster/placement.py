"""Which hosts may run on which workers, and how they are cut into shards. Pure.

A host with `imageserving_worker: NAME` runs only on a worker started with `--resources NAME=…`;
each of its shards asks for `{NAME: 1}`, so a worker runs at most as many of them at once as
it offers. Hosts without it run anywhere. A host whose resource no worker offers is answered at
once (`unreachable`), never left queued for a worker that may not come.

Shards are small so that losing a worker costs little to ask again, and numerous enough that
every worker has several to take (a worker that finishes early takes the next).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..results import HostResult, Result
from ..target import Target

MAX_SHARD = 25          # hosts per shard at most: a lost worker costs at most this many re-asks each
SHARDS_PER_WORKER = 4   # aim for at least this many shards per worker, for balance


def no_worker_reason(resource: str) -> str:
    return f"no worker offers {resource}"


@dataclass(frozen=True)
class Placement:
    """Shards in submission order (resource or None, hosts in inventory order), and the unplaceable."""

    shards: tuple[tuple[str | None, tuple[Target, ...]], ...]
    unplaceable: tuple[HostResult, ...]


def shard_size(hosts: int, workers: int, forks: int) -> int:
    """Takes the host count, worker count and --forks; returns hosts per shard (1..MAX_SHARD)."""
    spread = math.ceil(hosts / max(1, workers * SHARDS_PER_WORKER))
    return max(1, min(spread, MAX_SHARD, max(1, forks)))


def place(targets: Sequence[Target], offered: Collection[str], size: int) -> Placement:
    """Takes targets, the resource names some worker offers, and a shard size; returns the Placement."""
    groups: dict[str | None, list[Target]] = {}
    unplaceable: list[HostResult] = []
    for target in targets:
        if target.worker is not None and target.worker not in offered:
            unplaceable.append(HostResult(target.name, Result.UNREACHABLE, no_worker_reason(target.worker)))
            continue
        groups.setdefault(target.worker, []).append(target)
    shards = tuple((resource, tuple(hosts[i:i + size]))
                   for resource, hosts in groups.items() for i in range(0, len(hosts), max(1, size)))
    return Placement(shards, tuple(unplaceable))


def resources_for(resource: str | None) -> dict[str, float] | None:
    """The dask `resources=` of a shard: one unit of the host's resource, or none (anywhere)."""
    return {resource: 1} if resource is not None else None
