"""`deploy`: this installation's agent (or --wheel) to every host: probe, wheels per platform, install.

The run is fleet/deploy/run.py's phases over one in-process Fleet (run.local_fleet; deploy never
runs through --cluster: the run context refuses it), so a host is connected to once for all of them.
"""

from __future__ import annotations

import zipfile

from ..context import RunContext
from ..deploy.plan import DeployRequest
from ..deploy.run import DeployJob, interpreters
from ..deploy.run import deploy as deploy_hosts
from ..deploy.wheelhouse import WheelhouseError, given_wheel, project_wheel
from ..runner import Fleet
from .run import Outcome, execute


def plan(ctx: RunContext, wheel: str | None = None, *, force: bool = False, systemd: bool = False,
         activate: bool = True) -> DeployJob:
    """What to deploy to the context's hosts; raises WheelhouseError (exit 1: nothing contacted yet)."""
    try:
        project = given_wheel(wheel) if wheel else project_wheel()
    except (OSError, zipfile.BadZipFile) as exc:
        raise WheelhouseError(str(exc)) from None
    return DeployJob(project, DeployRequest(force=force, systemd=systemd, activate=activate),
                     interpreters([(h.name, h.vars) for h in ctx.hosts]))


def deploy(ctx: RunContext, fleet: Fleet, job: DeployJob) -> Outcome:
    """Deploys on the in-process fan-out (its sessions carry the uploads); each host told to fleet.on_result."""
    return execute(ctx, fleet, lambda _fanout, targets: deploy_hosts(fleet, targets, job, on_result=fleet.on_result))
