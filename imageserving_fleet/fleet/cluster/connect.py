"""From the run's settings to a ClusterFleet: the checks that come before any host or worker.

Imported only when --cluster (or IMAGESERVING_CLUSTER) is set; dask itself only at the end,
once every refusal that needs no cluster has had its say.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ...errors import ClusterError, UsageError
from ..results import HostResult
from ..target import Target
from .address import ClusterAddress

if TYPE_CHECKING:
    from ..session import RunSettings
    from .fanout import ClusterFleet

NOT_THROUGH_A_CLUSTER = ("deploy",)  # the wheels are on this machine: deploy runs from here


def cluster_fleet(settings: RunSettings, address: ClusterAddress, command: str, targets: Sequence[Target],
                  on_result: Callable[[HostResult], None] | None) -> ClusterFleet:
    """Takes the run's settings and cluster; returns a ClusterFleet, or raises UsageError/ClusterError."""
    if command in NOT_THROUGH_A_CLUSTER:
        raise UsageError(f"{command} does not run through --cluster (it sends files from this machine); "
                         "run it without --cluster")
    wants_password = any(t.become for t in targets) and (
        settings.ask_become_pass or bool(os.environ.get("IMAGESERVING_BECOME_PASS")))
    if wants_password and not address.encrypted:
        raise UsageError(f"a become password is sent only to a tls:// cluster, and --cluster is {address}: "
                         "use tls:// (README: the cluster section), or drop -K/IMAGESERVING_BECOME_PASS")
    if (settings.options.password is not None or any(t.password is not None for t in targets)) \
            and not address.encrypted:
        raise UsageError(f"an SSH password (-k, IMAGESERVING_SSH_PASS or ansible_password) is sent only to a "
                         f"tls:// cluster, and --cluster is {address}: use tls://, or keys")
    try:
        from .fanout import ClusterFleet
    except ImportError as exc:
        raise ClusterError(f"--cluster needs dask distributed ({exc.name or exc} is missing): "
                           "pip install 'imageserving-fleet[cluster]'") from None
    return ClusterFleet(address, settings.options, forks=settings.forks, timeout=settings.deadline_for(command),
                        become_password=settings.become_password(targets), on_result=on_result)
