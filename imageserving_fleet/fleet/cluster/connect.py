"""From a run context with a cluster address to a ClusterFleet; dask is imported only here.

The refusals that need no cluster (deploy, a password to a plain tcp:// scheduler) were made
when the context was resolved (context.py); this one says what is missing when dask is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import ClusterError
from ..results import HostResult

if TYPE_CHECKING:
    from ..context import RunContext
    from .fanout import ClusterFleet


def cluster_fleet(ctx: RunContext, on_result: Callable[[HostResult], None] | None = None) -> ClusterFleet:
    """Takes a run context whose `cluster` is set; returns its ClusterFleet, or raises ClusterError."""
    assert ctx.cluster is not None
    try:
        from .fanout import ClusterFleet
    except ImportError as exc:
        raise ClusterError(f"--cluster needs dask distributed ({exc.name or exc} is missing): "
                           "pip install 'imageserving-fleet[cluster]'") from None
    return ClusterFleet(ctx.cluster, ctx.ssh, forks=ctx.forks, timeout=ctx.timeout,
                        become_password=ctx.become_password, on_result=on_result,
                        persist=ctx.persist)
